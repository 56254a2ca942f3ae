"""What the firewall does when the wall clock steps (appliance.clockwatch): blocks and quarantines keep the time
they had left.

The kernel's set timeouts run on monotonic time and need nothing; `fw_entries.expires_at` is wall time, read when
the sets are re-seeded (after a restart or a restore), so it moves with the step: a forward step must not lift
every block at the next restart, a step back must not make them last longer.
"""

from __future__ import annotations

from appliance.subsystem import Context


def on_clock_step(ctx: Context, before: float, delta: float) -> int:
    """Move the expiry of every block and quarantine still running before the step by `delta` seconds."""
    with ctx.db.transaction() as conn:
        cur = conn.execute(
            "UPDATE fw_entries SET expires_at = expires_at + ? WHERE expires_at IS NOT NULL AND expires_at > ?",
            (delta, before),
        )
    return cur.rowcount
