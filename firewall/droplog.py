"""The drop log: NFLOG records kept in SQLite (newest KEEP rows) for `mamori fw drops` and the web UI."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict

from appliance.storage import Database
from appliance.subsystem import Context
from firewall.nflog import Drop, NflogReader
from firewall.render import LOG_GROUP

log = logging.getLogger(__name__)
KEEP = 10_000
PRUNE_EVERY = 500


def store(db: Database, drops: Iterable[Drop]) -> int:
    rows = [asdict(d) for d in drops]
    if not rows:
        return 0
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO fw_drops(ts, prefix, in_if, out_if, src, dst, proto, sport, dport) "
            "VALUES (:ts, :prefix, :in_if, :out_if, :src, :dst, :proto, :sport, :dport)",
            rows,
        )
    return len(rows)


def prune(db: Database, keep: int = KEEP) -> None:
    with db.transaction() as conn:
        conn.execute("DELETE FROM fw_drops WHERE id <= (SELECT MAX(id) FROM fw_drops) - ?", (keep,))


def recent(db: Database, limit: int = 50) -> list[Drop]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT ts, prefix, in_if, out_if, src, dst, proto, sport, dport FROM fw_drops ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [Drop(**dict(r)) for r in reversed(rows)]


def describe(prefix: str) -> tuple[str, str]:
    """'mamori drop lan>wan blocked-outbound: ' -> ('lan>wan', 'blocked-outbound')."""
    parts = prefix.replace("mamori drop", "", 1).strip().rstrip(":").split()
    return (parts[0], parts[1]) if len(parts) >= 2 else (prefix.strip(), "")


class DropLogWorker:
    """Daemon worker: bound to the NFLOG group of the ruleset, stores every drop the kernel reports."""

    name = "firewall-droplog"

    def __init__(self, ctx: Context, group: int = LOG_GROUP) -> None:
        self.ctx = ctx
        self.group = group

    def run(self, stop: threading.Event) -> None:
        reader = NflogReader(self.group)
        stored = lost = 0
        try:
            while not stop.is_set():
                drops = reader.read(timeout=1.0)
                try:
                    count = store(self.ctx.db, drops)
                except sqlite3.OperationalError as exc:
                    # A full disk: the drops of this read are lost (the kernel still dropped the packets);
                    # keep reading so the log resumes by itself when there is room again.
                    if not lost:
                        log.error("drop log: cannot store drops (%s); counting them until there is room", exc)
                    lost += len(drops)
                    continue
                if lost:
                    log.warning("drop log: storing again; %d drops were not stored", lost)
                    lost = 0
                stored += count
                if count and stored % PRUNE_EVERY < count:
                    prune(self.ctx.db)
        finally:
            reader.close()
