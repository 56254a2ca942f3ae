"""Evidence in SQLite: each backup made (or failed) and each restore test, for MHLW checklist item 3②.

The checklist view and monthly report read `backup_status`; they should not query the tables directly.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.clock import wall
from appliance.storage import Database


@dataclass(frozen=True)
class RunRecord:
    id: int
    ts: float
    kind: str
    archive: str
    size: int
    ok: bool
    error: str


@dataclass(frozen=True)
class TestRecord:
    id: int
    ts: float
    archive: str
    backup_created: str
    files: int
    ok: bool
    error_code: str
    error: str


@dataclass(frozen=True)
class BackupStatus:
    """What the checklist shows: the last successful backup, the last run (maybe failed), the last test."""

    last_ok_backup: RunRecord | None
    last_backup: RunRecord | None
    last_ok_test: TestRecord | None
    last_test: TestRecord | None


def record_run(db: Database, conn: sqlite3.Connection | None = None, **fields: Any) -> int:
    row = {"ts": wall(), "archive": "", "size": 0, "sha256": "", "files": 0, "error_code": "", "error": "",
           "actor": "", **fields}  # fmt: skip
    row["ok"] = int(bool(row["ok"]))
    return _insert(db, "backup_runs", row, conn)


def record_test(db: Database, conn: sqlite3.Connection | None = None, **fields: Any) -> int:
    row = {"archive_sha256": "", "backup_created": "", "files": 0, "error_code": "", "error": "", "actor": "",
           **fields}  # fmt: skip
    row["ok"] = int(bool(row["ok"]))
    return _insert(db, "backup_tests", row, conn)


def _insert(db: Database, table: str, row: dict[str, Any], conn: sqlite3.Connection | None) -> int:
    cols = sorted(row)
    sql = f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    if conn is not None:
        return int(conn.execute(sql, [row[c] for c in cols]).lastrowid or 0)
    with db.transaction() as c:
        return int(c.execute(sql, [row[c] for c in cols]).lastrowid or 0)


def _run(row: sqlite3.Row | None) -> RunRecord | None:
    if row is None:
        return None
    return RunRecord(
        row["id"], row["ts"], row["kind"], row["archive"], row["size"], bool(row["ok"]), row["error"]
    )


def _test(row: sqlite3.Row | None) -> TestRecord | None:
    if row is None:
        return None
    return TestRecord(row["id"], row["ts"], row["archive"], row["backup_created"], row["files"], bool(row["ok"]),
                      row["error_code"], row["error"])  # fmt: skip


def backup_status(db: Database) -> BackupStatus:
    with db.connection() as conn:
        runs = "SELECT * FROM backup_runs WHERE kind != 'restore' {} ORDER BY ts DESC, id DESC LIMIT 1"
        tests = "SELECT * FROM backup_tests {} ORDER BY ts DESC, id DESC LIMIT 1"
        return BackupStatus(
            last_ok_backup=_run(conn.execute(runs.format("AND ok = 1")).fetchone()),
            last_backup=_run(conn.execute(runs.format("")).fetchone()),
            last_ok_test=_test(conn.execute(tests.format("WHERE ok = 1")).fetchone()),
            last_test=_test(conn.execute(tests.format("")).fetchone()),
        )


def recent_tests(db: Database, limit: int = 20) -> list[TestRecord]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM backup_tests ORDER BY ts DESC, id DESC LIMIT ?", (limit,)
        ).fetchall()
    return [t for t in (_test(r) for r in rows) if t is not None]
