"""The firewall area's query functions that the web UI asks (firewall/queries.py)."""

from __future__ import annotations

import time

from appliance.subsystem import Context
from firewall.queries import held_addresses, is_held
from webui.sources import is_blocked


def test_an_address_blocked_before_the_newest_200_is_still_found(ctx: Context) -> None:
    now = time.time()
    with ctx.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO fw_entries(kind, ip, reason, source, created_at, expires_at) VALUES ('block', ?, '', ?, ?, ?)",
            [
                (f"198.51.100.{i}" if i < 250 else "192.168.10.20", "ids", now - 1000 + i, now + 3600)
                for i in range(251)
            ]
            + [("203.0.113.9", "cli", now - 5000, None)],
        )
    assert "203.0.113.9" not in {h.ip for h in held_addresses(ctx.db, now)}  # beyond the list's 200
    assert is_held(ctx.db, "203.0.113.9", now) and is_blocked(ctx.db, "203.0.113.9", now)
    assert not is_held(ctx.db, "203.0.113.10", now)
    assert not is_held(ctx.db, "203.0.113.9", now, kind="quarantine")
    assert not is_held(ctx.db, "198.51.100.1", now + 7200)  # ran out
