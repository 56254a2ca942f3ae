"""rsyslogd's own counters (impstats, JSON lines) for the forwarding action and its queue.

impstats appends one line per counter set every STATS_INTERVAL_S seconds, prefixed with a local time:
`Sun Dec  6 18:47:21 2026: { "name": "siem-fwd queue", ... }`. Only the newest set is of interest; the
file is kept small by `cap` (truncated in place: rsyslogd appends with O_APPEND). A line that is not JSON
is skipped and counted, never guessed at.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from siem.render import ACTION_NAME

log = logging.getLogger(__name__)
TAIL_BYTES = 64 << 10
CAP_BYTES = 1 << 20


@dataclass(frozen=True)
class ForwardStats:
    """The newest counters: messages in the action's queue (memory and disk), sent, failed, suspensions."""

    queued: int = 0
    queued_disk: int = 0
    disk_bytes: int = 0
    processed: int = 0
    failed: int = 0
    suspended: int = 0
    bad_lines: int = 0
    seen: bool = False  # rsyslogd has written at least one counter set

    @property
    def depth(self) -> int:
        return self.queued + self.queued_disk


def parse_stats(text: str) -> ForwardStats:
    values: dict[str, dict] = {}
    bad = 0
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
            values[str(record["name"])] = record
        except (ValueError, KeyError, TypeError):
            bad += 1
    action = values.get(ACTION_NAME, {})
    queue = values.get(f"{ACTION_NAME} queue", {})
    disk = values.get(f"{ACTION_NAME} queue[DA]", {})
    return ForwardStats(
        queued=int(queue.get("size", 0)), queued_disk=int(disk.get("size", 0)),
        disk_bytes=int(disk.get("bytes", 0) or 0), processed=int(action.get("processed", 0)),
        failed=int(action.get("failed", 0)), suspended=int(action.get("suspended", 0)), bad_lines=bad,
        seen=bool(action or queue),
    )  # fmt: skip


def read_stats(path: Path) -> ForwardStats:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(size - TAIL_BYTES, 0))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ForwardStats()
    return parse_stats(text)


def cap(path: Path, cap_bytes: int = CAP_BYTES) -> bool:
    """Truncate the stats file in place once it passes `cap_bytes` (the newest set is rewritten within
    STATS_INTERVAL_S)."""
    try:
        if path.stat().st_size <= cap_bytes:
            return False
        os.truncate(path, 0)
        return True
    except FileNotFoundError:
        return False
