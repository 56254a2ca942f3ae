"""Retention of the vendors' API tokens (fleet_tokens), called by the coordinator (appliance.retention).

A token that can never work again is deleted KEEP_DAYS after it stopped working: revoked, or its vendor
account expired, or its account is gone and the token has not been used since. Until then its row stays so
that the token ids in recent audit entries still name an account and a label; after it, the audit log alone
keeps the history (`fleet.token_created`, `fleet.token_revoked`, every `fleet.api_request` with its token
id). A token that still works is never deleted, however old (the clinic revokes it, not the disk budget).

While the coordinator does not trust ages (the clock was stepped forward lately), nothing is deleted.
The table holds a handful of rows per vendor account: no size budget applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.storage import Database
from webui.accounts import AccountStore

if TYPE_CHECKING:
    from appliance.retention import Policy

KEEP_DAYS = 400  # a year and a season: the audit entries of last year's work still name their token


def retain(db: Database, policy: Policy) -> dict[str, int]:
    from appliance.retention import AGES_PAUSED_DAYS

    if policy.keep_days.get("records", 0) >= AGES_PAUSED_DAYS:
        return {"fleet_tokens": 0}
    cutoff = policy.now - KEEP_DAYS * 86400
    accounts = {a.name: a for a in AccountStore(db).all()}
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, account, created_at, last_used FROM fleet_tokens WHERE revoked_at IS NULL"
        ).fetchall()
    dead = []
    for token_id, name, created_at, last_used in rows:
        account = accounts.get(name)
        if account is None or account.role != "vendor":  # deleted (the audit log says when): unused since
            gone = max(created_at, last_used or 0.0) < cutoff
        else:  # expired long ago (a disabled account may be enabled again: its tokens stay)
            gone = account.expires_at is not None and account.expires_at < cutoff
        if gone:
            dead.append((token_id,))
    with db.transaction() as conn:
        revoked = conn.execute(
            "DELETE FROM fleet_tokens WHERE revoked_at IS NOT NULL AND revoked_at < ?", (cutoff,)
        ).rowcount
        conn.executemany("DELETE FROM fleet_tokens WHERE id = ? AND revoked_at IS NULL", dead)
    return {"fleet_tokens": revoked + len(dead)}
