"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

A power cut at any moment leaves either the old or the new file, never a torn one. And the daemon's safe
ways to touch a file in a directory a less trusted account may write: hand it over for reading
(`open_regular`), change its owner or mode (`change_regular`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _write_aside(path: Path, data: bytes | str, mode: int) -> str:
    """`data` in a new temp file beside `path` (same file system), with `mode`, flushed to disk; its name."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_aside(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def create_once(path: Path, data: bytes | str, mode: int = 0o600) -> bool:
    """Make `path` with `data` unless it exists, whole or not at all, never replacing it; True if this call made it.

    For secrets made on first use (keys, tokens, the setup code) that a daemon and a CLI may both try to make at
    the same moment: the data is written aside and link()ed into place, and link() fails rather than replace, so
    both end up reading the first one's file (a rename would let the second silently replace a key already in use).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _write_aside(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)
    return True


def open_regular(path: Path) -> int:
    """A descriptor of the regular file at `path`, opened for reading, to hand to a less trusted reader: a
    symlink is refused, never followed (O_NOFOLLOW), and a FIFO or device cannot hang the opener
    (O_NONBLOCK, then refused as not a regular file). OSError for anything else than a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def change_regular(path: Path, mode: int, owner: tuple[int, int] | None = None) -> bool:
    """Give the regular file at `path` `owner` (uid, gid; None: as it is) and then `mode`; False, changing
    nothing, when nothing is there or it is not a regular file (a link planted there is never followed).

    The file is held by an O_PATH descriptor and changed through its /proc/self/fd name, never opened for
    reading: closing an ordinary descriptor of a SQLite database drops every POSIX lock this process holds on
    it, those of its own connections included (SQLite's documented caveat), while an O_PATH descriptor's
    close drops none; and what it names cannot be swapped for a link between the check and the change.
    The owner goes first: a process without CAP_FOWNER may chmod only what it owns."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        name = f"/proc/self/fd/{fd}"
        if owner is not None and (st.st_uid, st.st_gid) != owner:
            os.chown(name, *owner)
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(name, mode)
        return True
    finally:
        os.close(fd)
