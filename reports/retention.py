"""Retention of report_runs (one row per monthly report made), called by appliance.retention: rows older
than `storage.records_days` go. report_answers (one row per checklist item) does not grow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.retention import delete_older
from appliance.storage import Database

if TYPE_CHECKING:
    from appliance.retention import Policy


def retain(db: Database, policy: Policy) -> dict[str, int]:
    return {"report_runs": delete_older(db, "report_runs", "ts", policy.cutoff("records"))}
