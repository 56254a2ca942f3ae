"""The hand-off from the daemon to rsyslogd: append-only spool files that rsyslog's imfile reads.

Why a spool file and not a socket: a line is handed over once it is on disk (fsync), whether rsyslogd is
running or not, and imfile's persistent state says how far rsyslogd has read, so neither side's restart
loses or repeats a line. The daemon's cursor per source (siem_cursors) moves only after the lines are on
disk; if the daemon dies in between, `recover()` reads the event ids back from the spool, so nothing is
spooled twice, and ends a half-written last line, marked as a fragment (its event is written again whole).

Files are named 000000001.spool, 000000002.spool, …: a new one is started when the newest reaches
ROTATE_BYTES, and older ones are deleted once imfile's state shows them read to the end (`prune`).
Their total is bounded by the budget (siem.render.spool_budget_bytes): over it, the daemon stops adding
(the records wait in the database, nothing is lost) until rsyslogd has caught up.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from siem.events import parse_event_id
from siem.render import SPOOL_SUFFIX

log = logging.getLogger(__name__)
ROTATE_BYTES = 4 << 20
FRAGMENT = " [mamori: fragment, resent whole]"


class Spool:
    def __init__(self, directory: Path, work_dir: Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory, self.work_dir, self.rotate_bytes = directory, work_dir, rotate_bytes

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        out = [p for p in self.directory.iterdir() if p.name.endswith(SPOOL_SUFFIX) and p.stem.isdigit()]
        return sorted(out, key=lambda p: int(p.stem))

    def total_bytes(self) -> int:
        return sum(_size(p) for p in self.files())

    def recover(self) -> dict[str, int]:
        """The highest event id per source found in the spool, after cutting a half-written last line."""
        found: dict[str, int] = {}
        files = self.files()
        if files:
            _end_partial_line(files[-1])
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.rstrip("\n").endswith(FRAGMENT):
                        continue
                    parsed = parse_event_id(line)
                    if parsed and parsed[1] > found.get(parsed[0], 0):
                        found[parsed[0]] = parsed[1]
        return found

    def append(self, lines: list[str]) -> int:
        """Append whole lines and fsync; returns the bytes written. Starts a new file past ROTATE_BYTES."""
        if not lines:
            return 0
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        files = self.files()
        if not files or _size(files[-1]) >= self.rotate_bytes:
            number = int(files[-1].stem) + 1 if files else 1
            target = self.directory / f"{number:09d}{SPOOL_SUFFIX}"
        else:
            target = files[-1]
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(data)

    def read_offsets(self) -> dict[str, int]:
        """How far imfile has read each spool file (its state files in the work directory)."""
        out: dict[str, int] = {}
        if not self.work_dir.is_dir():
            return out
        for state in self.work_dir.glob("imfile-state:*"):
            try:
                data = json.loads(state.read_text(encoding="utf-8"))
                out[str(data["filename"])] = int(data["curr_offs"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being rewritten by rsyslogd, or not ours: looked at again next time
        return out

    def unread_bytes(self) -> int:
        offsets = self.read_offsets()
        return sum(max(_size(p) - offsets.get(str(p), 0), 0) for p in self.files())

    def prune(self) -> int:
        """Delete spool files read to the end, never the newest (it is being appended to)."""
        offsets = self.read_offsets()
        removed = 0
        for path in self.files()[:-1]:
            if offsets.get(str(path), -1) >= _size(path):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _end_partial_line(path: Path) -> None:
    """End a last line that has no line end (the daemon died while writing it) with one. Not cut off:
    imfile may already have read past its start, and a file shorter than its offset would garble the
    next line. The fragment is excluded from `recover` (it ends with FRAGMENT), so its event is written
    again whole; a collector sees the fragment once, marked."""
    size = _size(path)
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        log.warning(
            "siem: a half-written spool line in %s is ended and marked, its event spooled again", path.name
        )
        fh.seek(size)
        fh.write(FRAGMENT.encode() + b"\n")
        os.fsync(fh.fileno())
