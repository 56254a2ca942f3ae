"""Config revisions: every applied config, with author, time, source, comment and a readable diff.

Statuses: `applied` (live), `pending` (live, but rolled back unless confirmed in time), `reverted`
(was live, rolled back by the confirm timer), `superseded` (an older revision that is no longer live).
"""

from __future__ import annotations

import difflib
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.clock import wall
from appliance.config.load import dump_config, load_config, parse_config
from appliance.config.model import MamoriConfig
from appliance.storage import Database

LIVE_STATUSES = ("applied", "pending")


@dataclass(frozen=True)
class Revision:
    id: int
    created_at: float
    author: str
    source: str
    comment: str
    config_text: str
    sha256: str
    diff: str
    status: str


def normalized(text: str) -> str:
    """The config as the model sees it (every default spelled out, comments gone): what a diff compares."""
    return dump_config(parse_config(text).model, full=True)


def readable_diff(old_text: str | None, new_text: str) -> str:
    old = normalized(old_text).splitlines(keepends=True) if old_text else []
    new = normalized(new_text).splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, "前の設定", "新しい設定", n=2))


class RevisionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _row(row: sqlite3.Row) -> Revision:
        return Revision(**{k: row[k] for k in row.keys()})

    def add(
        self,
        conn: sqlite3.Connection,
        text: str,
        author: str,
        source: str,
        comment: str,
        diff: str,
        status: str,
    ) -> Revision:
        """Insert inside the caller's transaction; the previous live revision becomes `superseded`."""
        conn.execute("UPDATE revisions SET status = 'superseded' WHERE status IN ('applied', 'pending')")
        now = wall()
        sha = hashlib.sha256(text.encode()).hexdigest()
        cur = conn.execute(
            "INSERT INTO revisions(created_at, author, source, comment, config_text, sha256, diff, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, author, source, comment, text, sha, diff, status),
        )
        return Revision(cur.lastrowid, now, author, source, comment, text, sha, diff, status)

    def set_status(self, conn: sqlite3.Connection, rev_id: int, status: str) -> None:
        conn.execute("UPDATE revisions SET status = ? WHERE id = ?", (status, rev_id))

    def get(self, rev_id: int) -> Revision | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT * FROM revisions WHERE id = ?", (rev_id,)).fetchone()
        return self._row(row) if row else None

    def live(self) -> Revision | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM revisions WHERE status IN ('applied', 'pending') ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return self._row(row) if row else None

    def history(self, limit: int = 50) -> list[Revision]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT * FROM revisions ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [self._row(r) for r in rows]


def live_config(db: Database) -> MamoriConfig | None:
    """The config the box runs: the live (applied or pending) revision's, parsed; None before the first apply.
    The one reading of "the running config" for every area (it was written out in each)."""
    rev = RevisionStore(db).live()
    return parse_config(rev.config_text).model if rev is not None else None


def config_in_force(db: Database, config_file: Path) -> MamoriConfig | None:
    """The live revision's config, else the config file (a box before its first apply), else None (a new box
    with no file yet)."""
    live = live_config(db)
    if live is not None:
        return live
    if config_file.exists():
        return load_config(config_file).model
    return None
