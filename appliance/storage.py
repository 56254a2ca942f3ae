"""SQLite state under the state directory: WAL mode, schema migrations, one connection per thread.

Each subsystem registers its own tables as numbered migrations in `SCHEMA` (append only: a released
migration is never edited, so a box upgraded from any version ends with the same schema).
The database holds password hashes, TOTP secrets and the audit log: it is created 0600 whatever the umask
(SQLite gives its -wal and -shm files the database file's mode), and `migrate` narrows a database made
0644 by an older version.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Every area keeps its own append-only list of migrations in `<area>/schema.py` (a released migration is
# never edited, so a box upgraded from any version ends with the same schema). Versions are per area.
SCHEMA_MODULES: tuple[str, ...] = (
    "appliance.schema", "firewall.schema", "ids.schema", "vpn.schema", "webui.schema",
    "appliance.backup.schema", "reports.schema", "appliance.notify.schema", "siem.schema", "fleetapi.schema",
)  # fmt: skip


FILE_MODE = 0o600


def _schemas() -> dict[str, list[str]]:
    return {name.rsplit(".", 1)[0]: importlib.import_module(name).SCHEMA for name in SCHEMA_MODULES}


class Database:
    """A handle on the state database. Cheap to create; opens a connection per use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # made here with its mode, not by sqlite with the umask's
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def migrate(self) -> dict[str, int]:
        """Apply pending schema migrations of every area; returns each area's schema version now in force."""
        versions: dict[str, int] = {}
        self._narrow_modes()
        with self.connection() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (area TEXT PRIMARY KEY, version INTEGER)"
            )
            for area, scripts in _schemas().items():
                row = conn.execute("SELECT version FROM schema_versions WHERE area = ?", (area,)).fetchone()
                version = row[0] if row else 0
                for number, script in enumerate(scripts[version:], start=version + 1):
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in script.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(
                            "INSERT OR REPLACE INTO schema_versions(area, version) VALUES (?, ?)",
                            (area, number),
                        )
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    version = number
                versions[area] = version
        return versions

    def _narrow_modes(self) -> None:
        for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                if p.stat().st_mode & 0o077:
                    os.chmod(p, FILE_MODE)
            except FileNotFoundError:
                continue

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def get_kv(self, key: str) -> str | None:
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

    def set_kv(self, key: str, value: str | None, conn: sqlite3.Connection | None = None) -> None:
        def _do(c: sqlite3.Connection) -> None:
            if value is None:
                c.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                c.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))

        if conn is not None:
            _do(conn)
        else:
            with self.connection() as c:
                _do(c)
