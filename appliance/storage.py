"""SQLite state under the state directory: WAL mode, schema migrations, one connection per thread.

Each subsystem registers its own tables as numbered migrations in `SCHEMA` (append only: a released
migration is never edited, so a box upgraded from any version ends with the same schema).
The database holds password hashes, TOTP secrets and the audit log: it is created 0660 whatever the umask
(SQLite gives its -wal and -shm files the database file's mode), nothing for others; `migrate` narrows a
database made 0644 by an older version. Its group is root's, except on a box where the daemon gives the
database's own directory to the `mamori-db` group (appliance/child_access.py): the web UI runs as an account
of that group and writes it (the VPN portal opens no database).

The database lives in a directory of its own (`<state>/db/`, appliance.paths): SQLite makes the -wal and
-shm files beside it whenever no connection holds them, so whoever opens it needs write access to that
directory, and write access to the state directory itself would let them rename `keys/`. A state directory
of an older version (or restored from its backup) has it at its top: the first connection moves it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.area import load
from appliance.areas import hooks
from appliance.fileio import change_regular

# Every area keeps its own append-only list of migrations in its `schema` module (appliance.area; a
# released migration is never edited, so a box upgraded from any version ends with the same schema).
# Versions are per area, keyed by the schema module's package ("firewall", "appliance.backup").
SCHEMA_MODULES: tuple[str, ...] = tuple(hooks("schema"))

FILE_MODE = 0o660
DB_DIR_NAME = "db"


def adopt_legacy_location(path: Path) -> None:
    """Move `<state>/mamori.db` (an older version's place) to `path` = `<state>/db/mamori.db` if only the old
    one exists. Its WAL is checkpointed into it first, so the one file moved holds everything; the state
    directory's lock keeps two processes from moving it at once."""
    if path.parent.name != DB_DIR_NAME or path.exists():
        return
    legacy = path.parent.parent / path.name
    if not legacy.exists():
        return
    lock = os.open(path.parent.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() or not legacy.exists():  # the other process moved it
            return
        conn = sqlite3.connect(f"file:{legacy}?mode=rw", uri=True, timeout=30)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm", ""):  # the main file last: it is what says "moved"
            try:
                os.rename(f"{legacy}{suffix}", f"{path}{suffix}")
            except FileNotFoundError:
                continue
    finally:
        os.close(lock)


def _schemas() -> dict[str, list[str]]:
    return {name.rsplit(".", 1)[0]: load(name).SCHEMA for name in SCHEMA_MODULES}


class Database:
    """A handle on the state database. Cheap to create; opens a connection per use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def state_dir(self) -> Path:
        """The state directory this database belongs to (its keys are under it): the parent of its own
        `db/` directory, or, for a database placed elsewhere (tests, staging), its directory."""
        return self.path.parent.parent if self.path.parent.name == DB_DIR_NAME else self.path.parent

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        adopt_legacy_location(self.path)
        if not self.path.exists():  # made here with its mode, not by sqlite with the umask's
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)  # the umask (0077 in the daemon's unit) took the group's bits
            finally:
                os.close(fd)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def hold(self) -> sqlite3.Connection:
        """A connection the daemon keeps open for as long as it runs, so that the daemon, never the web UI, is
        the last to close the database while it runs. The last connection to close deletes
        the -wal and -shm files; the web UI's account cannot delete those of root in the sticky `db/`
        directory (appliance.child_access), and a WAL left behind is replayed and then appended to at every
        later open, so it would grow without end (and opening raced its deletion)."""
        conn = self.connect()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the -shm; holds no transaction
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
        """Take "other" bits off the database's files, never following a link: the web UI's account may
        create files in `db/`, and a link planted as `-wal` must not have root chmod what it points to."""
        for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                mode = os.lstat(p).st_mode
            except FileNotFoundError:
                continue
            if mode & 0o007:
                change_regular(p, stat.S_IMODE(mode) & FILE_MODE)

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

    def get_kv(self, key: str, conn: sqlite3.Connection | None = None) -> str | None:
        """One kv value; pass `conn` to read it inside a caller's transaction."""
        if conn is not None:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None
        with self.connection() as c:
            return self.get_kv(key, c)

    def kv_items(self, prefix: str, conn: sqlite3.Connection | None = None) -> list[tuple[str, str]]:
        """(key, value) of every kv key starting with `prefix` (an area's own keys, e.g. "webui.proposal.")."""
        if conn is not None:
            sql = "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key"
            return [(r[0], r[1]) for r in conn.execute(sql, (len(prefix), prefix))]
        with self.connection() as c:
            return self.kv_items(prefix, c)

    def set_kv(self, key: str, value: str | None, conn: sqlite3.Connection | None = None) -> None:
        """Set one kv value (None deletes it); pass `conn` to write it inside a caller's transaction."""
        if conn is not None:
            set_kv(conn, key, value)
        else:
            with self.connection() as c:
                set_kv(c, key, value)


def set_kv(conn: sqlite3.Connection, key: str, value: str | None) -> None:
    """Set one kv value (None deletes it) in the transaction of `conn`: for code that holds a connection but
    no Database (ids.ingest stores Suricata's stats with the events it read)."""
    if value is None:
        conn.execute("DELETE FROM kv WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))
