"""Retention of the web UI's growing rows, called by the coordinator (appliance.retention).

- web_sessions not used for a day (the longest idle timeout is 4 hours: such a session can never be used
  again; it is otherwise only deleted when its browser comes back or its account changes);
- web_login_attempts no throttle rule reads any more (webui.throttle.forget_old: failures after a day, the
  addresses an account signed in from after 30 days);
- web_password_history beyond the newest HISTORY per account (all that the reuse rule reads);
- proposed changes (kv `webui.proposal.*`) older than their TTL, left behind by a browser that never
  came back to the review page.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from appliance.storage import Database
from webui.changes import PROPOSAL_PREFIX, TTL
from webui.passwords import HISTORY
from webui.throttle import forget_old

if TYPE_CHECKING:
    from appliance.retention import Policy

DAY = 86400


def retain(db: Database, policy: Policy) -> dict[str, int]:
    now = policy.now
    with db.transaction() as conn:
        sessions = conn.execute("DELETE FROM web_sessions WHERE last_seen < ?", (now - DAY,)).rowcount
        attempts = forget_old(conn, now)
        history = conn.execute(
            "DELETE FROM web_password_history WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER"
            " (PARTITION BY name ORDER BY ts DESC, id DESC) AS n FROM web_password_history) WHERE n > ?)",
            (HISTORY,),
        ).rowcount
        stale = []
        for key, value in db.kv_items(PROPOSAL_PREFIX, conn):
            try:
                created = float(json.loads(value)["created"])
            except (ValueError, KeyError, TypeError):
                created = 0.0  # unreadable: no page can load it either
            if now - created > TTL:
                stale.append(key)
        for key in stale:
            db.set_kv(key, None, conn)
    return {"web_sessions": sessions, "web_login_attempts": attempts, "web_password_history": history,
            "kv:webui.proposal": len(stale)}  # fmt: skip
