"""Follow Suricata's eve.json into SQLite exactly once, across rotation, truncation and restarts.

Scope: one EVE file path. The read position (device, inode, offset, a hash of the first bytes of the
file, and whether we are inside an oversized line) is stored in the same SQLite transaction as the events
read up to it, so a crash at any moment resumes with no event lost and none stored twice.

How files change under us, and what we do:
- rotation (rename + a new file at the path): the renamed file is drained to its end before the new one is
  read. We switch only once the new file has data, because Suricata keeps writing to the renamed file until
  it reopens its output (logrotate creates the new file before it signals Suricata).
- truncation (copytruncate), or the inode reused by a different file: the file is shorter than our offset,
  or its first bytes no longer hash to what we saw; we start again at 0 and count it.
- a half-written last line waits for its newline.
- a line that is not UTF-8, not JSON, not an EVE object, or longer than `max_line` bytes is counted and kept
  aside in ids_quarantine (truncated to a sample), never silently dropped and never fatal.
- a path that is not a regular file of its own: Suricata runs as the mamori-ids account and can write its
  log directory, so a compromised Suricata could put a symlink (or a hard link, a FIFO) where eve.json is,
  pointing at a root-only file that this reader, running as root, would then read and store as EVE. Every
  EVE file is opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO cannot hang the reader) and must be a
  regular file with one link (fstat of the descriptor opened, not a check before it); anything else is
  refused, logged as an error and counted (`refused_file`), and never read.
Non-goal: reading compressed rotated files (eve.json.1.gz); Mamori's own rotation never compresses before
the reader has drained the file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.storage import Database

try:  # orjson: ~4x faster, and it refuses invalid UTF-8 in the same pass
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the standard library is the fallback, correct but slower
    from json import JSONDecodeError as _JSONError
    from json import loads as _loads

log = logging.getLogger(__name__)

HEAD_BYTES = 256
SAMPLE_BYTES = 4096
DEFAULT_MAX_LINE = 1 << 20
LOG_PER_BATCH = 10
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class RefusedFile(Exception):
    """An EVE path that is not a regular file with a single link (see the module docstring)."""


@dataclass(frozen=True)
class Position:
    dev: int
    ino: int
    offset: int
    head_len: int
    head_hash: str
    skipping: bool = False


@dataclass(frozen=True)
class Event:
    """One EVE record as stored: its row id and the decoded object (attacker-controlled content)."""

    id: int
    received: float
    record: dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """The events of one committed batch: row ids base_id, base_id+1, ... (no per-event object unless asked:
    at 100k events/s the allocation shows)."""

    base_id: int
    received: float
    records: list[dict[str, Any]]  # stored in ids_events with ids base_id, base_id+1, ...
    unstored: list[dict[str, Any]] = field(default_factory=list)  # read and counted, not kept (flows...)

    def __len__(self) -> int:
        return len(self.records)

    def of_type(self, event_type: str) -> Iterator[Event]:
        for i, rec in enumerate(self.records):
            if rec.get("event_type") == event_type:
                yield Event(self.base_id + i, self.received, rec)


# sink(conn, stored) runs inside the transaction that stores the events (normalise alerts, incidents);
# on_commit(stored) runs after it committed (side effects such as blocking an address).
Sink = Callable[[sqlite3.Connection, Stored], None]
OnCommit = Callable[[Stored], None]


@dataclass
class _Batch:
    events: list[dict[str, Any]]
    sizes: list[int]
    raws: list[str]
    quarantine: list[tuple[str, int, bytes]]
    counters: dict[str, int]


def _new_batch() -> _Batch:
    return _Batch([], [], [], [], {})


def _head(fd: int) -> tuple[int, str]:
    data = os.pread(fd, HEAD_BYTES, 0)
    return len(data), hashlib.sha256(data).hexdigest()


def _head_matches(fd: int, pos: Position) -> bool:
    data = os.pread(fd, pos.head_len, 0)
    return len(data) == pos.head_len and hashlib.sha256(data).hexdigest() == pos.head_hash


def open_eve(path: Path) -> int:
    """A descriptor on the regular, singly linked file at `path`; RefusedFile for a symlink, a hard link, a
    FIFO, a device or a directory (FileNotFoundError when nothing is there). Checked on the descriptor
    itself, so nothing can be swapped between the check and the read."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink
            raise RefusedFile(f"{path} is a symbolic link") from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        kind = "a hard-linked file" if stat.S_ISREG(st.st_mode) else "not a regular file"
        raise RefusedFile(f"{path} is {kind}")
    return fd


def event_time(record: dict[str, Any]) -> float | None:
    """The EVE timestamp as epoch seconds, or None when it is missing or not a timestamp."""
    ts = record.get("timestamp")
    if not isinstance(ts, str) or len(ts) > 64:
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except (ValueError, OverflowError, OSError):  # year 0 or 9999 without a zone, out of the platform's range
        return None


class EveReader:
    """Reads new complete lines of one EVE file into SQLite. Not thread-safe: one reader per file."""

    def __init__(
        self,
        db: Database,
        path: Path,
        *,
        source: str = "eve",
        max_line: int = DEFAULT_MAX_LINE,
        batch_lines: int = 2000,
        sink: Sink | None = None,
        on_commit: OnCommit | None = None,
        clock: Callable[[], float] = time.time,
        skip_store: frozenset[str] = frozenset(),
        autocheckpoint: bool = True,
    ) -> None:
        self.db = db
        self.path = Path(path)
        self.source = source
        self.max_line = max_line
        self.batch_lines = batch_lines
        self.sink = sink
        self.on_commit = on_commit
        self.clock = clock
        # Event types read, counted and handed to the sink but not stored raw (flow, stats: ~90% of a
        # box's EVE volume; storing them would wear out a Raspberry Pi's SD card for no reader).
        self.skip_store = skip_store
        # False: the caller checkpoints the WAL from another thread, so that the fsync of a checkpoint never
        # sits between an alert being read and its source being blocked.
        self.autocheckpoint = autocheckpoint
        self._read_size = max(1 << 20, max_line + 1)
        self._fd: int | None = None
        self._pos: Position | None = None
        self._conn: sqlite3.Connection | None = None
        self._refused: tuple[int, int, int] | None = None  # (dev, ino, mtime) last refused: logged once

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT on the reader's own connection (opening one costs milliseconds)."""
        if self._conn is None:
            self._conn = self.db.connect()
            if not self.autocheckpoint:
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- public -------------------------------------------------------------------------------------------

    def poll(self, max_batches: int = 1000) -> int:
        """Read everything available now (up to max_batches batches); returns the number of events stored."""
        stored = 0
        for _ in range(max_batches):
            if self._fd is None and not self._open_initial():
                return stored
            count, progressed = self._read_batch()
            stored += count
            if progressed:
                continue
            if self._check_changed() or self._switch_if_rotated():
                continue
            break
        return stored

    # -- opening and identity -----------------------------------------------------------------------------

    def _load_position(self) -> Position | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT dev, ino, offset, head_len, head_hash, skipping FROM ids_eve_position WHERE source = ?",
                (self.source,),
            ).fetchone()
        if row is None:
            return None
        return Position(row[0], row[1], row[2], row[3], row[4], bool(row[5]))

    def _open_initial(self) -> bool:
        """Open the file the saved position is in (the path, or the file it was rotated to)."""
        saved = self._load_position()
        try:
            st = os.lstat(self.path)  # the link itself, if it is one: never the identity of its target
        except FileNotFoundError:
            st = None
        if saved is not None and (st is None or (st.st_dev, st.st_ino) != (saved.dev, saved.ino)):
            rotated = self._find_rotated(saved)
            if rotated is not None:
                self._fd, self._pos = rotated, saved
                log.info("resuming in the rotated EVE file (inode %d) before %s", saved.ino, self.path)
                return True
        fd = self._open_checked(self.path, st) if st is not None else None
        if fd is None:  # nothing there, or refused (then counted once, not at every poll)
            return False
        fst = os.fstat(fd)
        self._fd = fd
        if saved is not None and (fst.st_dev, fst.st_ino) == (saved.dev, saved.ino):
            self._pos = saved
            self._check_changed()
            return True
        if saved is not None:
            self._bump("rotation_unseen")
            log.warning("EVE file %s was replaced while not running; the old file is gone", self.path)
        self._pos = Position(fst.st_dev, fst.st_ino, 0, 0, hashlib.sha256(b"").hexdigest())
        return True

    def _find_rotated(self, saved: Position) -> int | None:
        """A sibling like eve.json.1 with the saved identity and head: the file we were reading, renamed."""
        parent = self.path.parent
        try:
            names = sorted(os.listdir(parent))
        except FileNotFoundError:
            return None
        for name in names:
            if not name.startswith(self.path.name) or name == self.path.name:
                continue
            candidate = parent / name
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) != (saved.dev, saved.ino):
                continue
            fd = self._open_checked(candidate, st)
            if fd is None:
                continue
            fst = os.fstat(fd)  # the file opened, which may not be the one lstat saw a moment before
            if (fst.st_dev, fst.st_ino) == (saved.dev, saved.ino) and _head_matches(fd, saved):
                return fd
            os.close(fd)
        return None

    def _open_checked(self, path: Path, seen: os.stat_result) -> int | None:
        """open_eve, with a refusal logged as an error and counted once per file put there (not per poll)."""
        try:
            return open_eve(path)
        except FileNotFoundError:
            return None
        except RefusedFile as exc:
            key = (seen.st_dev, seen.st_ino, seen.st_mtime_ns)
            if key != self._refused:
                self._refused = key
                self._bump("refused_file")
                log.error(
                    "EVE file refused, not read: %s (only a regular file of its own is read as EVE)", exc
                )
            return None

    def _check_changed(self) -> bool:
        """Truncated or reused: shorter than our offset, or different first bytes. Restart at 0."""
        assert self._fd is not None and self._pos is not None
        size = os.fstat(self._fd).st_size
        if size >= self._pos.offset and _head_matches(self._fd, self._pos):
            return False
        reason = "truncated" if size < self._pos.offset else "replaced_in_place"
        log.warning("EVE file %s was %s; reading it again from the start", self.path, reason)
        self._pos = replace(self._pos, offset=0, head_len=0, head_hash=hashlib.sha256(b"").hexdigest(),
                            skipping=False)  # fmt: skip
        self._commit(_new_batch(), {reason: 1})
        return True

    def _switch_if_rotated(self) -> bool:
        """At the end of the current file: move to the new file at the path once it has data."""
        assert self._fd is not None and self._pos is not None
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        if (st.st_dev, st.st_ino) == (self._pos.dev, self._pos.ino) or st.st_size == 0:
            return False
        fd = self._open_checked(self.path, st)
        if fd is None:  # not a file we may read: stay on the current one (at its end), read nothing new
            return False
        # The writer has reopened: the old file is final. Drain what it wrote since our last read.
        for _ in range(10_000):
            _count, progressed = self._read_batch(final=True)
            if not progressed:
                break
        os.close(self._fd)
        fst = os.fstat(fd)
        self._fd = fd
        self._pos = Position(fst.st_dev, fst.st_ino, 0, 0, hashlib.sha256(b"").hexdigest())
        self._commit(_new_batch(), {"rotations": 1})
        log.info("EVE file %s rotated; now reading the new file", self.path)
        return True

    # -- reading ------------------------------------------------------------------------------------------

    def _read_batch(self, final: bool = False) -> tuple[int, bool]:
        """Read up to batch_lines lines from the offset and commit them. Returns (events, progressed)."""
        assert self._fd is not None and self._pos is not None
        batch = _new_batch()
        offset, skipping = self._pos.offset, self._pos.skipping
        lines = 0
        while lines < self.batch_lines:
            data = os.pread(self._fd, self._read_size, offset)
            if not data:
                break
            consumed, skipping, n = self._consume(data, skipping, batch, self.batch_lines - lines)
            if consumed == 0 and final and not skipping:
                # The writer is gone and left a line without its newline: keep it aside, it will never end.
                self._quarantine(batch, "unterminated", data[: self.max_line + 1])
                consumed = len(data)
            offset += consumed
            lines += n
            if consumed < len(data) and n == 0:
                break
        if offset == self._pos.offset and skipping == self._pos.skipping:
            return 0, False
        self._pos = replace(self._pos, offset=offset, skipping=skipping)
        return self._commit(batch, {}), True

    def _consume(self, data: bytes, skipping: bool, batch: _Batch, room: int) -> tuple[int, bool, int]:
        """Split complete lines out of data. Returns (bytes consumed, still skipping, lines handled)."""
        pos, lines = 0, 0
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return len(data), True, 0
            pos, skipping = nl + 1, False
        while lines < room:
            nl = data.find(b"\n", pos)
            if nl < 0:
                rest = len(data) - pos
                if rest > self.max_line:
                    self._quarantine(batch, "oversized", data[pos:])
                    return len(data), True, lines + 1
                return pos, False, lines
            line = data[pos:nl]
            if len(line) > self.max_line:
                self._quarantine(batch, "oversized", line)
            else:
                self._parse(line, batch)
            pos = nl + 1
            lines += 1
        return pos, False, lines

    def _parse(self, line: bytes, batch: _Batch) -> None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._quarantine(batch, "invalid_utf8", line)
            return
        try:
            record = _loads(line)
        except (_JSONError, ValueError):
            # orjson also refuses lone surrogates escaped in the text (\ud800): still not valid UTF-8 data
            self._quarantine(batch, "invalid_json", line)
            return
        if not isinstance(record, dict) or not isinstance(record.get("event_type"), str):
            self._quarantine(batch, "not_eve", line)
            return
        batch.events.append(record)
        batch.raws.append(text)
        batch.sizes.append(len(line))

    def _quarantine(self, batch: _Batch, reason: str, line: bytes) -> None:
        if len(batch.quarantine) < LOG_PER_BATCH:  # all are counted and kept; only the log is capped
            log.warning("EVE line kept aside (%s, %d bytes)", reason, len(line))
        elif len(batch.quarantine) == LOG_PER_BATCH:
            log.warning("more EVE lines kept aside in this batch; see `mamori ids status` for the counts")
        batch.quarantine.append((reason, len(line), line[:SAMPLE_BYTES]))
        batch.counters[reason] = batch.counters.get(reason, 0) + 1

    # -- storing ------------------------------------------------------------------------------------------

    def _commit(self, batch: _Batch, extra: dict[str, int]) -> int:
        """Store the batch, its counters and the new position in one transaction; then run on_commit."""
        assert self._fd is not None and self._pos is not None
        if self._pos.head_len < HEAD_BYTES:
            head_len, head_hash = _head(self._fd)
            if head_len > self._pos.head_len:
                self._pos = replace(self._pos, head_len=head_len, head_hash=head_hash)
        now = self.clock()
        stored: Stored | None = None
        with self._transaction() as conn:
            if batch.events:
                stored = self._insert(conn, batch, now)
                if self.sink is not None:
                    self.sink(conn, stored)
            if batch.quarantine:
                conn.executemany(
                    "INSERT INTO ids_quarantine(received, reason, length, sample) VALUES (?, ?, ?, ?)",
                    [(now, reason, length, sample) for reason, length, sample in batch.quarantine],
                )
            counters = dict(batch.counters)
            counters["events"] = len(batch.events)
            for name, value in extra.items():
                counters[name] = counters.get(name, 0) + value
            add_counters(conn, counters)
            self._save_position(conn, now)
        if stored is not None and self.on_commit is not None:
            self.on_commit(stored)
        return len(batch.events)

    def _insert(self, conn: sqlite3.Connection, batch: _Batch, now: float) -> Stored:
        base = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ids_events").fetchone()[0] + 1
        keep: list[dict[str, Any]] = []
        rows: list[tuple] = []
        unstored: list[dict[str, Any]] = []
        skip = self.skip_store
        for rec, size, raw in zip(batch.events, batch.sizes, batch.raws, strict=True):
            etype = rec["event_type"]
            if etype in skip:
                unstored.append(rec)
                continue
            rows.append((base + len(keep), now, event_time(rec), etype[:32], size, raw))
            keep.append(rec)
        if rows:
            conn.executemany(
                "INSERT INTO ids_events(id, received, ts, event_type, size, raw) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        if unstored:
            batch.counters["events_not_stored"] = batch.counters.get("events_not_stored", 0) + len(unstored)
        return Stored(base, now, keep, unstored)

    def _save_position(self, conn: sqlite3.Connection, now: float) -> None:
        p = self._pos
        assert p is not None
        conn.execute(
            "INSERT OR REPLACE INTO ids_eve_position(source, dev, ino, offset, head_len, head_hash, skipping,"
            " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.source, p.dev, p.ino, p.offset, p.head_len, p.head_hash, int(p.skipping), now),
        )

    def _bump(self, name: str) -> None:
        with self._transaction() as conn:
            add_counters(conn, {name: 1})


def add_counters(conn: sqlite3.Connection, counters: dict[str, int]) -> None:
    conn.executemany(
        "INSERT INTO ids_counters(name, value) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        [(k, v) for k, v in counters.items() if v],
    )


def counters(db: Database) -> dict[str, int]:
    """The reader's running counts: events, rotations, truncated, invalid_json, oversized, ..."""
    with db.connection() as conn:
        return {row[0]: row[1] for row in conn.execute("SELECT name, value FROM ids_counters")}
