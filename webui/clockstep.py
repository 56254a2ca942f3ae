"""What the web UI's records do when the wall clock steps (appliance.clockwatch): sessions, enrolments and the
sign-in throttle keep the time they had left.

A web session ends after an idle time and 12 h after sign-in, measured from `last_seen`/`created_at` in wall
time; the throttle counts failures within recent minutes. All of them move with the step, so a step back never
lengthens a session or a wait, and a step forward never signs everybody out at once. A vendor account's
`expires_at` is an appointment the administrator set in clinic time and does not move.
"""

from __future__ import annotations

from appliance.subsystem import Context


def on_clock_step(ctx: Context, before: float, delta: float) -> int:
    """Move running sessions, pending enrolments and recent sign-in attempts by `delta` seconds.

    `before` is the wall time just before the step; returns how many rows moved."""
    with ctx.db.transaction() as conn:
        moved = conn.execute(
            "UPDATE web_sessions SET created_at = created_at + ?, last_seen = last_seen + ?", (delta, delta)
        ).rowcount
        moved += conn.execute("UPDATE web_totp_pending SET created_at = created_at + ?", (delta,)).rowcount
        moved += conn.execute(
            "UPDATE web_login_attempts SET ts = ts + ?",
            (delta,),  # failures and known addresses alike
        ).rowcount
    return moved
