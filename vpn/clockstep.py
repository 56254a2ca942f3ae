"""What the VPN does when the wall clock steps (appliance.clockwatch): sessions and lockouts keep the time they
had left; maintenance windows stay where the clinic put them.

A session's `expires` is a duration from sign-in written as wall time, and so is a lockout's `locked_until`:
both move with the step, so a step back never prolongs a session and a step forward never ends every session at
once. A vendor window is an appointment in clinic time (14:00-17:00) and does not move; one the box already
closed stays closed (`Window.open_at`).
"""

from __future__ import annotations

from appliance.subsystem import Context


def on_clock_step(ctx: Context, before: float, delta: float) -> int:
    """Move the deadlines of open sessions and running lockouts by `delta` seconds; returns how many moved.

    `before` is the wall time just before the step: only deadlines still running then are moved."""
    with ctx.db.transaction() as conn:
        sessions = conn.execute(
            "UPDATE vpn_sessions SET expires = expires + ? WHERE ended IS NULL AND expires > ?",
            (delta, before),
        ).rowcount
        locks = conn.execute(
            "UPDATE vpn_credentials SET locked_until = locked_until + ? WHERE locked_until > ?",
            (delta, before),
        ).rowcount
    return sessions + locks
