"""Retention: keep the IDS tables within an age and a size, so the disk of a small box never fills.

Scope: ids_events, ids_alerts, ids_quarantine (by age and, for events, by total stored bytes), blocks that
ended before the age limit, and incidents whose last alert is older than the age limit and that are not
open. An open (未対応) incident is never deleted; with no new alert for `ids.incident_auto_close_days`
(policy key "incident_auto_close") it is first closed, noted and audited (ids.incidents.auto_close), and
then ages like any closed one. `retain` is what the coordinator (appliance.retention) calls with the
IDS share of the disk budget: past the age rules, the oldest events, then alerts, then quarantined lines
go until the IDS tables fit. Deletion is in bounded chunks so the reader is never blocked for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance import clock
from appliance.storage import Database
from ids.incidents import auto_close

if TYPE_CHECKING:
    from appliance.retention import Policy

log = logging.getLogger(__name__)

CHUNK = 5000


@dataclass(frozen=True)
class RetentionResult:
    events_deleted: int
    alerts_deleted: int
    quarantine_deleted: int
    incidents_deleted: int


def _delete_older(db: Database, table: str, column: str, cutoff: float, max_rounds: int = 1000) -> int:
    total = 0
    for _ in range(max_rounds):
        with db.transaction() as conn:
            cur = conn.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} < ? ORDER BY id LIMIT ?)",
                (cutoff, CHUNK),
            )
        total += cur.rowcount
        if cur.rowcount < CHUNK:
            break
    return total


def _shrink_events(db: Database, max_bytes: int, max_rounds: int = 1000) -> int:
    """Delete the oldest events until the raw JSON stored is at most max_bytes."""
    total = 0
    for _ in range(max_rounds):
        with db.transaction() as conn:
            size = conn.execute("SELECT COALESCE(SUM(size), 0) FROM ids_events").fetchone()[0]
            if size <= max_bytes:
                break
            excess = size - max_bytes
            rows = conn.execute("SELECT id, size FROM ids_events ORDER BY id LIMIT ?", (CHUNK,)).fetchall()
            freed, last_id = 0, None
            for row in rows:
                freed += row[1]
                last_id = row[0]
                if freed >= excess:
                    break
            if last_id is None:
                break
            cur = conn.execute("DELETE FROM ids_events WHERE id <= ?", (last_id,))
        total += cur.rowcount
    return total


def apply_retention(
    db: Database, max_age_s: float, max_event_bytes: int, now: float | None = None
) -> RetentionResult:
    """Delete what is older than max_age_s, then the oldest events beyond max_event_bytes."""
    cutoff = (clock.wall() if now is None else now) - max_age_s
    events = _delete_older(db, "ids_events", "received", cutoff)
    events += _shrink_events(db, max_event_bytes)
    alerts = _delete_older(db, "ids_alerts", "ts", cutoff)
    quarantine = _delete_older(db, "ids_quarantine", "received", cutoff)
    with db.transaction() as conn:
        incidents = conn.execute(
            "DELETE FROM ids_incidents WHERE last_seen < ? AND state != '未対応'", (cutoff,)
        ).rowcount
    result = RetentionResult(events, alerts, quarantine, incidents)
    if any((events, alerts, quarantine, incidents)):
        log.info("IDS retention: %s", result)
    return result


TABLES = ["ids_events", "ids_alerts", "ids_quarantine", "ids_incidents", "ids_blocks", "ids_counters",
          "ids_eve_position"]  # fmt: skip


def retain(db: Database, policy: Policy) -> dict[str, int]:
    """The coordinator's entry: ids.retention_days, then the IDS share of storage.max_db_mb."""
    from appliance.retention import shrink

    days = policy.keep_days.get("incident_auto_close")
    if days is not None:  # first, so that what it closes is then under the normal age rule
        closed = auto_close(db, policy.now, days, policy.tz)  # the note in the clinic's zone
        if closed:
            log.info("IDS: %d open incidents without a new alert for %d days closed", len(closed), days)
    res = apply_retention(db, policy.keep_days["ids"] * 86400, policy.max_bytes // 2, policy.now)
    with db.transaction() as conn:
        # a block that was lifted, or ran out, before the age limit; a permanent one (0) stays
        blocks = conn.execute(
            "DELETE FROM ids_blocks WHERE ts < ? AND (undone_at IS NOT NULL OR (timeout_s > 0 AND ts + timeout_s < ?))",
            (policy.cutoff("ids"), policy.now),
        ).rowcount
    deleted = {"ids_events": res.events_deleted, "ids_alerts": res.alerts_deleted,
               "ids_quarantine": res.quarantine_deleted, "ids_incidents": res.incidents_deleted,
               "ids_blocks": blocks}  # fmt: skip
    for table, n in shrink(
        db, ["ids_events", "ids_alerts", "ids_quarantine"], TABLES, policy.max_bytes
    ).items():
        deleted[table] += n
    return deleted
