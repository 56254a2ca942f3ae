"""Which process is the box's daemon: the one holding run/mamori.lock.

The pid file alone can lie: after a crash or a power cut its number may belong to another process by
now, and signalling that process (a restore's reload) would hit a stranger. The daemon holds an exclusive
lock on run/mamori.lock for its whole life (the kernel drops it when the process ends, however it ends),
so the pid file is believed only while that lock is held. The same lock keeps a second daemon off the
same state directory: two would fight over the firewall, Suricata and the database.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from appliance.errors import MamoriError

LOCK_NAME = "mamori.lock"
PID_NAME = "mamori.pid"


def hold(run_dir: Path) -> int:
    """Take the daemon's lock and return its descriptor (kept open for the process's life; not inherited by
    the programs it starts). Refuses when another daemon holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MamoriError(
            "Mamori の常駐プロセスはすでに動いています（同じ状態ディレクトリで二つは動かせません）",
            "a Mamori daemon already runs on this state directory (two cannot share it)",
            code="daemon.already_running",
        ) from None
    return fd


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if it was taken
    return False


def running_pid(run_dir: Path) -> int | None:
    """The running daemon's pid, or None when no daemon holds the lock (a stale pid file is ignored)."""
    try:
        pid = int((run_dir / PID_NAME).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if _held(run_dir / LOCK_NAME) else None
