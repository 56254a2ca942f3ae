"""Retention of the records of backups and restore tests (MHLW checklist 3②), called by
appliance.retention: rows older than `storage.records_days` go. The archives themselves are pruned by
generation count (appliance.backup.store.prune)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.retention import delete_older
from appliance.storage import Database

if TYPE_CHECKING:
    from appliance.retention import Policy


def retain(db: Database, policy: Policy) -> dict[str, int]:
    cutoff = policy.cutoff("records")
    return {
        "backup_runs": delete_older(db, "backup_runs", "ts", cutoff),
        "backup_tests": delete_older(db, "backup_tests", "ts", cutoff),
    }
