"""The upload spool: where the web UI (as `mamori-web`) puts an uploaded file for the daemon to take. On the
ground floor: the web UI's pages and the areas' handlers (ids, update) share it.

The web UI writes: `spool_upload` streams an upload under a size limit into a fresh file `<kind>-<random><suffix>`
in `<state>/uploads` and names it to an action by that file name only. The daemon reads: `open_spooled` treats
the directory as the web UI's, i.e. attacker-controlled once the web UI is taken over. The name must match the
kind's fixed pattern (no path is ever joined from a request), the file is opened relative to the directory with
O_NOFOLLOW (a symlink is refused, never followed) and O_NONBLOCK (a FIFO cannot hang the daemon), and the
opened descriptor must be a regular file with one link (no hard link to a file of root's) within the size
limit. The handler then reads only that descriptor, or a private copy of it (`private_copy`): a file swapped
under the name after the checks is never what it reads.
Non-goal: removing spool files the web UI left behind on a crash; the web UI removes its own in `finally`.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from appliance.actions.registry import ActionError
from appliance.errors import MamoriError
from appliance.subsystem import Context

CHUNK = 1024 * 1024
# kind -> (suffix); the file name is `<kind>-<22 url-safe chars><suffix>`
KINDS = {"rules": ".tar.gz", "update": ".bundle"}


class SpoolError(MamoriError):
    code = "action.spool"


def spool_path(state_dir: Path) -> Path:
    return state_dir / "uploads"


def spool_dir(ctx: Context) -> Path:
    """The spool directory, made if missing (by the web UI; on a box the daemon has made it already)."""
    d = spool_path(ctx.paths.state_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def provision(state_dir: Path, owner: tuple[int, int] | None) -> None:
    """The daemon, before it starts the web UI: the spool is the web UI's account's (0700), the one place
    under the state directory it writes files. `owner` None (no such account, a dev machine): left as it is."""
    d = spool_path(state_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if owner is not None:
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(f"{d} is not a directory")
        if (st.st_uid, st.st_gid) != owner or stat.S_IMODE(st.st_mode) != 0o700:
            # root's first: the daemon's unit has no CAP_FOWNER, so it may chmod only what root owns
            os.chown(d, 0, 0, follow_symlinks=False)
            os.chmod(d, 0o700)
            os.chown(d, *owner, follow_symlinks=False)


def name_pattern(kind: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(kind)}-[A-Za-z0-9_-]{{16,64}}{re.escape(KINDS[kind])}$")


@contextmanager
def spool_upload(ctx: Context, kind: str, stream: BinaryIO, limit: int) -> Iterator[str]:
    """Stream `stream` (at most `limit` bytes) into a new 0600 spool file; yield its name; always remove it."""
    name = f"{kind}-{secrets.token_urlsafe(16)}{KINDS[kind]}"
    path = spool_dir(ctx) / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise SpoolError(f"ファイルが大きすぎます（上限 {limit // (1024 * 1024)} MB）。",
                                     f"the file is too large (limit {limit // (1024 * 1024)} MB)")  # fmt: skip
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise SpoolError("ファイルが空です。", "the file is empty")
        yield name
    finally:
        path.unlink(missing_ok=True)


def open_spooled(ctx: Context, kind: str, name: str, limit: int) -> BinaryIO:
    """The spool file `name` of `kind`, opened for reading after every check above; ActionError otherwise."""
    if kind not in KINDS or not name_pattern(kind).match(name):
        raise ActionError("アップロードされたファイルの名前が違います", "not the name of a spooled upload")
    try:
        dir_fd = os.open(
            spool_path(ctx.paths.state_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        raise ActionError(
            "アップロードされたファイルが見つかりません", "the spooled upload is not there"
        ) from None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ActionError(
            "アップロードされたファイルが見つかりません", "the spooled upload is not there"
        ) from None
    except OSError:  # ELOOP: a symlink
        raise ActionError(
            "アップロードされたファイルを開けません", "the spooled upload cannot be opened"
        ) from None
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(st.st_mode):
        problem = "not a regular file"
    elif st.st_nlink != 1:
        problem = "a file with other links"
    elif st.st_size > limit:
        problem = "over the size limit"
    if problem:
        os.close(fd)
        raise ActionError(
            "アップロードされたファイルを受け付けられません", f"the spooled upload is {problem}"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


@contextmanager
def private_copy(src: BinaryIO, suffix: str, limit: int, where: Path) -> Iterator[Path]:
    """A copy of an opened spool file in a fresh 0700 directory under `where` (the daemon's own, on the disk:
    /tmp is often RAM), for code that takes a path; at most `limit` bytes (the file may still grow after the
    size check); always removed."""
    where.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="spool-", dir=where) as d:
        path = Path(d) / f"upload{suffix}"
        with open(path, "xb") as out:
            copied = 0
            while chunk := src.read(CHUNK):
                copied += len(chunk)
                if copied > limit:
                    raise ActionError(
                        "アップロードされたファイルが大きすぎます", "the spooled upload grew over the limit"
                    )
                out.write(chunk)
        yield path
