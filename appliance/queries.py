"""Plain values about the core records (config revisions, audit log) for other areas and the metrics.

The audit table has no index on `action`: counting one action reads the table once (a few ms for the
tens of thousands of rows five years of a clinic make), which is what a scrape may afford.
"""

from __future__ import annotations

from typing import Any

from appliance.audit import newest_id
from appliance.storage import Database


def audit_count(db: Database, action: str) -> int:
    """How many audit entries of one action the log holds (kept five years: effectively since set-up)."""
    with db.connection() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit WHERE action = ?", (action,)).fetchone()[0])


def audit_count_by(db: Database, action: str, detail_key: str) -> dict[str, int]:
    """Entries of one action grouped by one key of their JSON detail ("" when the key is missing)."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT COALESCE(json_extract(detail, ?), ''), COUNT(*) FROM audit WHERE action = ? GROUP BY 1",
            (f"$.{detail_key}", action),
        ).fetchall()
    return {str(key): int(count) for key, count in rows}


def first_revision_time(db: Database) -> float | None:
    """When the box's first config revision was recorded: when it was set up."""
    with db.connection() as conn:
        row = conn.execute("SELECT MIN(created_at) FROM revisions").fetchone()
    return float(row[0]) if row and row[0] is not None else None


def audit_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Audit entries of [start, end) in their order (id, ts, actor, source, remote, action, detail as JSON text)."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, ts, actor, source, remote, action, detail FROM audit WHERE ts >= ? AND ts < ? ORDER BY id",
            (start, end),
        ).fetchall()
    return [dict(r) for r in rows]


def audit_from(db: Database, remotes: list[str], source: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest audit entries sent from one of `remotes` or recorded with `source` (id, ts, actor, source,
    remote, action, detail as JSON text), newest first: what the vendor hub's link did (mgmt/status.py)."""
    marks = ",".join("?" * len(remotes)) or "NULL"
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, ts, actor, source, remote, action, detail FROM audit"
            f" WHERE remote IN ({marks}) OR source = ? ORDER BY id DESC LIMIT ?",
            (*remotes, source, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def config_text_at(db: Database, ts: float) -> str | None:
    """The config text in force at `ts`: the newest revision recorded before it that was not reverted."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT config_text FROM revisions WHERE created_at < ? AND status != 'reverted' ORDER BY id DESC LIMIT 1",
            (ts,),
        ).fetchone()
    return row[0] if row else None


def any_revision_before(db: Database, ts: float) -> bool:
    """Whether the box had been set up (a first config revision) before `ts`."""
    with db.connection() as conn:
        return (
            conn.execute("SELECT 1 FROM revisions WHERE created_at < ? LIMIT 1", (ts,)).fetchone() is not None
        )


def audit_after(db: Database, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Audit entries with id > `after_id`, oldest first (id, ts, actor, source, remote, action, detail as JSON
    text): what the SIEM forwarder (siem/) has not handed on yet."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, ts, actor, source, remote, action, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def last_audit_id(db: Database) -> int:
    """The newest audit entry's id (0 when the log is empty)."""
    return newest_id(db)
