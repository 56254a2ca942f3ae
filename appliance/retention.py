"""Retention: every table that grows is kept within an age and, together, within one disk budget.

A clinic keeps the box five years or more on an SD card or a small SSD. Each area owns its tables and
its own pruning function (`<area>/retention.py`: `retain(db, policy) -> {table: rows deleted}`); no area
deletes another's rows. This module is the one coordinator: once an hour (and at start, so a box that was
off catches up) it gives every area its share of `storage.max_db_mb` and the ages of `storage:`, then
returns the freed pages to the file system (`PRAGMA incremental_vacuum`, `wal_checkpoint(TRUNCATE)`).

What is never pruned, whatever the budget: open incidents (未対応; after `ids.incident_auto_close_days`
without a new alert the IDS closes one itself, and then it ages like any closed one), the live or
pending config revision, the newest revisions, VPN devices (revoked ones are the record of which key was
valid when), accounts, and audit entries younger than `storage.audit_days` (default five years). The audit log is cut only
from its start, through `AuditLog.prune`, which keeps the chain verifiable.

Free pages: SQLite's default `auto_vacuum=NONE` keeps freed pages inside the file (reused by new rows;
the file never shrinks). Switching to INCREMENTAL needs one VACUUM, which rewrites the whole file under
an exclusive lock and needs as much free space again. We do it once, on the first run, while the file is
below CONVERT_MAX_BYTES (a new box, or one with little history) and the disk has room; a bigger database
stays in NONE mode, where the budget still holds (it is measured in used pages, not file size) and the
file stays at its high-water mark. Non-goal: a size guarantee for what is outside SQLite (eve.json,
backups, logs: ids.daemon, appliance.backup and appliance.logcap cap those).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from appliance import clock
from appliance.area import load
from appliance.areas import AREAS
from appliance.clockwatch import ages_trusted
from appliance.storage import Database

log = logging.getLogger(__name__)

MB = 1 << 20
RUN_EVERY_S = 3600.0
CONVERT_MAX_BYTES = 256 * MB
CHUNK = 5000
AGES_PAUSED_DAYS = 100 * 366  # while ages are not trusted: nothing is old enough to delete by age
# Each area's share of storage.max_db_mb and its pruning module (appliance.area: retention_share, retention).
# IDS events and alerts are nearly all of the volume; the others get room for many years of their (small)
# records. Shares sum to 1.0.
SHARES: dict[str, float] = {a.name: a.retention_share for a in AREAS if a.retention}
AREA_MODULES: dict[str, str] = {a.name: a.retention for a in AREAS if a.retention}


@dataclass(frozen=True)
class Policy:
    """What one area may keep: rows younger than `keep_days[kind]`, in at most `max_bytes` of pages."""

    now: float
    max_bytes: int
    keep_days: dict[str, int] = field(default_factory=dict)
    tz: str | None = None  # clinic.timezone, for what an area writes for a person to read (a note's time)

    def cutoff(self, kind: str) -> float:
        return self.now - self.keep_days[kind] * 86400


@dataclass
class Report:
    """What one coordinator run did: rows deleted per table, bytes in use before and after, pages freed."""

    deleted: dict[str, int] = field(default_factory=dict)
    used_before: int = 0
    used_after: int = 0
    file_after: int = 0
    failed: list[str] = field(default_factory=list)


# -- helpers shared by the areas' retention functions ----------------------------------------------------


def objects(conn: sqlite3.Connection, tables: Iterable[str]) -> list[str]:
    """The tables and their indexes (automatic ones included): what a table's rows occupy."""
    names = list(tables)
    marks = ",".join("?" * len(names))
    rows = conn.execute(
        f"SELECT name FROM sqlite_schema WHERE tbl_name IN ({marks}) AND type IN ('table', 'index')", names
    ).fetchall()
    return [r[0] for r in rows]


def used_bytes(conn: sqlite3.Connection, tables: Iterable[str]) -> int:
    """Bytes of pages the tables and their indexes occupy (dbstat walks only the b-trees named)."""
    total = 0
    for name in objects(conn, tables):
        row = conn.execute("SELECT pgsize FROM dbstat('main', 1) WHERE name = ?", (name,)).fetchone()
        total += (row[0] or 0) if row else 0
    return total


def db_used_bytes(conn: sqlite3.Connection) -> int:
    """Pages in use in the whole file (free pages excluded): the number the budget is about."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * conn.execute("PRAGMA page_size").fetchone()[0]


def delete_older(db: Database, table: str, column: str, cutoff: float, where: str = "") -> int:
    """Delete rows with `column < cutoff` (and `where`), oldest first, CHUNK rows per transaction so that
    the writers of the area (EVE ingestion) are never blocked for long."""
    extra = f" AND ({where})" if where else ""
    total = 0
    while True:
        with db.transaction() as conn:
            cur = conn.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {column} < ?{extra}"
                " ORDER BY rowid LIMIT ?)",
                (cutoff, CHUNK),
            )
        total += cur.rowcount
        if cur.rowcount < CHUNK:
            return total


def keep_newest(db: Database, table: str, max_rows: int) -> int:
    """Delete the oldest rows (lowest id) beyond the newest `max_rows`; returns how many went. A row cap an
    area's worker keeps between the coordinator's runs: it needs no clock, so no clock step can make it
    delete early."""
    with db.transaction() as conn:
        cut = conn.execute(
            f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?", (max_rows,)
        ).fetchone()
        return 0 if cut is None else conn.execute(f"DELETE FROM {table} WHERE id <= ?", (cut[0],)).rowcount


def shrink(db: Database, tables: list[str], owned: list[str], max_bytes: int) -> dict[str, int]:
    """Delete the oldest rows (lowest rowid) of `tables`, in that order, until the area's `owned` tables
    occupy at most `max_bytes`. Rows per round are estimated from the table's bytes per row (index pages
    do not empty in step with the table, hence a few rounds)."""
    deleted: dict[str, int] = {}
    with db.connection() as conn:
        if db_used_bytes(conn) <= max_bytes:  # O(1): the whole file fits, so does the area (no dbstat walk)
            return deleted
    for table in tables:
        for _ in range(20):
            with db.connection() as conn:
                used = used_bytes(conn, owned)
                if used <= max_bytes:
                    return deleted
                rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                if rows == 0:
                    break
                per_row = max(used_bytes(conn, [table]) / rows, 1.0)
            # 5% more than the estimate, so that a round usually ends below the budget
            want = min(rows, int((used - max_bytes) / per_row * 1.05) + 1)
            gone = 0
            while gone < want:
                with db.transaction() as conn:
                    cur = conn.execute(
                        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)",
                        (min(CHUNK, want - gone),),
                    )
                gone += cur.rowcount
            deleted[table] = deleted.get(table, 0) + gone
    return deleted


# -- the appliance core's own tables: config revisions and the audit log ---------------------------------

KEEP_REVISIONS = 50


def retain(db: Database, policy: Policy) -> dict[str, int]:
    """Config revisions older than `records` days (never a live/pending one, never the newest
    KEEP_REVISIONS) and audit entries older than `audit` days. Over budget, nothing more is deleted: these
    are the clinic's evidence; the overrun is logged."""
    from appliance.audit import AuditLog

    with db.transaction() as conn:
        revisions = conn.execute(
            "DELETE FROM revisions WHERE created_at < ? AND status NOT IN ('applied', 'pending')"
            " AND id < (SELECT COALESCE(MIN(id), 0) FROM"
            " (SELECT id FROM revisions ORDER BY id DESC LIMIT ?))",
            (policy.cutoff("records"), KEEP_REVISIONS),
        ).rowcount
    audit = AuditLog(db).prune(policy.cutoff("audit"))
    with db.connection() as conn:
        used = used_bytes(conn, ["revisions", "audit", "kv"])
    if used > policy.max_bytes:
        log.warning("config history and audit log use %d MB, over their share of %d MB: kept (evidence)",
                    used // MB, policy.max_bytes // MB)  # fmt: skip
    return {"revisions": revisions, "audit": audit}


# -- the coordinator --------------------------------------------------------------------------------------


def policies(cfg, now: float) -> dict[str, Policy]:  # type: ignore[no-untyped-def]
    """Each area's policy from the config: its share of storage.max_db_mb (IDS also bounded by
    ids.max_db_mb) and the ages of storage: (IDS by ids.retention_days)."""
    st = cfg.storage
    budget = st.max_db_mb * MB
    days = {"ids": cfg.ids.retention_days, "drops": st.drops_days, "peer_log": st.peer_log_days,
            "records": st.records_days, "audit": st.audit_days,
            "incident_auto_close": cfg.ids.incident_auto_close_days}  # fmt: skip
    tz = cfg.clinic.timezone
    out = {area: Policy(now, int(budget * share), days, tz) for area, share in SHARES.items()}
    out["ids"] = Policy(now, min(out["ids"].max_bytes, cfg.ids.max_db_mb * MB), days, tz)
    return out


def ensure_incremental(db: Database, convert_max: int = CONVERT_MAX_BYTES) -> bool:
    """Switch the file to auto_vacuum=INCREMENTAL once, if it is small enough; True when it is now."""
    with db.connection() as conn:
        mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
        if mode == 2:
            return True
        size = db.path.stat().st_size if db.path.exists() else 0
        if size > convert_max or shutil.disk_usage(db.path.parent).free < 3 * size:
            return False
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        log.info("database switched to incremental auto-vacuum (%d MB)", size // MB)
        return conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def give_back(db: Database) -> int:
    """Return free pages to the file system and fold the WAL into the file; the file size after."""
    with db.connection() as conn:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            # executescript steps it to the end (execute() frees a single page: each step frees one)
            conn.executescript("PRAGMA incremental_vacuum;")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:  # a long reader: the next run will do it
            log.debug("WAL checkpoint skipped: %s", exc)
    return db.path.stat().st_size


def run_once(db: Database, cfg, now: float | None = None) -> Report:  # type: ignore[no-untyped-def]
    """One pass over every area. One area's failure is logged and the others still run."""
    now = clock.wall() if now is None else now
    report = Report()
    ensure_incremental(db)
    with db.connection() as conn:
        report.used_before = db_used_bytes(conn)
    plans = policies(cfg, now)
    if not ages_trusted(db, now):
        log.warning("retention: the clock was stepped forward by more than a day lately; only the size budget "
                    "applies until a week has passed")  # fmt: skip
        plans = {
            area: replace(p, keep_days=dict.fromkeys(p.keep_days, AGES_PAUSED_DAYS))
            for area, p in plans.items()
        }
    for area, policy in plans.items():
        try:
            deleted = load(AREA_MODULES[area]).retain(db, policy)
        except (sqlite3.Error, OSError) as exc:
            log.error("retention of %s failed: %s", area, exc)
            report.failed.append(area)
            continue
        for table, n in deleted.items():
            report.deleted[table] = report.deleted.get(table, 0) + n
    report.file_after = give_back(db)
    with db.connection() as conn:
        report.used_after = db_used_bytes(conn)
    if any(report.deleted.values()):
        log.info("retention: %s; %d MB in use (budget %d MB), file %d MB",
                 {k: v for k, v in report.deleted.items() if v}, report.used_after // MB,
                 cfg.storage.max_db_mb, report.file_after // MB)  # fmt: skip
    return report


class RetentionWorker:
    """Daemon worker: runs the coordinator at start and then every RUN_EVERY_S."""

    name = "retention"

    def __init__(self, db: Database, cfg, every: float = RUN_EVERY_S,  # type: ignore[no-untyped-def]
                 clock_fn: Callable[[], float] = clock.wall) -> None:  # fmt: skip
        self.db, self.cfg, self.every, self.clock = db, cfg, every, clock_fn

    def run(self, stop: threading.Event) -> None:
        while True:
            run_once(self.db, self.cfg, self.clock())
            if stop.wait(self.every):
                return


def daemon_workers(ctx, cfg) -> list[RetentionWorker]:  # type: ignore[no-untyped-def]
    return [RetentionWorker(ctx.db, cfg)]
