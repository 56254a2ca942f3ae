"""One libnftables handle per process, serialised, plus the lock that keeps set updates and rebuilds apart.

Why a shared handle: creating an nft context costs more than the update itself, and one block must take a
few milliseconds. libnftables contexts are not thread-safe, so every call goes through one lock.
Why a file lock: the table rebuild reads the live set contents and re-adds them in the same batch; an
element added by another process between that read and the commit would be lost. Both sides take it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nftables

from appliance.errors import ApplyError

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_HANDLES: dict[int, nftables.Nftables] = {}


def _handle() -> nftables.Nftables:
    pid = os.getpid()  # a forked child must not share its parent's netlink socket
    handle = _HANDLES.get(pid)
    if handle is None:
        handle = nftables.Nftables()
        handle.set_json_output(True)
        handle.set_handle_output(False)
        _HANDLES.clear()
        _HANDLES[pid] = handle
    return handle


# strerror text -> errno, from this process's own C library: libnftables reports the kernel's netlink error
# only as strerror(errno) in its message, printed by the same libc (same locale), so the code is read back
# from that table and no English wording is compared anywhere.
_ERRNO_BY_TEXT: dict[str, int] = {os.strerror(code): code for code in sorted(errno.errorcode, reverse=True)}


class NftError(ApplyError):
    """nftables refused a command. `errno` is the kernel's reason when it gave one (errno.ENOENT: no such
    table, set or element; errno.EEXIST: it exists already), else None (a syntax or schema error)."""

    code = "firewall.nft"

    def __init__(self, ja: str, en: str, errno_code: int | None) -> None:
        super().__init__(ja, en)
        self.errno = errno_code


def errno_of(err: str) -> int | None:
    """The errno in libnftables' first error line ("Error: [Could not process rule: ]<strerror>"), or None."""
    lines = err.strip().splitlines()
    return _ERRNO_BY_TEXT.get(lines[0].rsplit(": ", 1)[-1].strip()) if lines else None


def _error(action_ja: str, action_en: str, detail: str) -> NftError:
    detail = detail.strip()[:2000]
    return NftError(
        f"ファイアウォール（nftables）が{action_ja}を受け付けませんでした。以前の状態のままです。詳細: {detail}",
        f"nftables refused to {action_en}; the previous state is unchanged. Details: {detail}",
        errno_of(detail),
    )


def run_batch(batch: dict[str, Any], dry_run: bool = False, validate: bool = True) -> None:
    """Send one JSON batch as one kernel transaction (all or nothing); raise NftError if refused.

    `validate=False` skips the JSON schema check for the tiny fixed-shape set updates (it costs more
    than the update itself); the kernel still refuses anything malformed.
    """
    with _LOCK:
        nft = _handle()
        try:
            if validate:
                nft.json_validate(batch)
        except Exception as exc:  # jsonschema's ValidationError and friends; reported, not swallowed
            raise _error("設定の形式", "validate the ruleset", str(exc)) from exc
        nft.set_dry_run(dry_run)
        try:
            rc, _out, err = nft.json_cmd(batch)
        finally:
            nft.set_dry_run(False)
    if rc != 0:
        raise _error("変更", "apply the change", err)


def list_json(command: str, terse: bool = False) -> list[dict[str, Any]] | None:
    """`nft -j [-t] <command>` as parsed objects, or None when the object does not exist.

    `terse` leaves out set elements: the structure of a table with 100k blocked addresses in milliseconds.
    """
    with _LOCK:
        nft = _handle()
        nft.set_terse_output(terse)
        try:
            rc, out, err = nft.cmd(command)
        finally:
            nft.set_terse_output(False)
    if rc != 0:
        if errno_of(err) == errno.ENOENT:
            return None
        raise _error("読み出し", f"run '{command}'", err)
    return json.loads(out).get("nftables", []) if out.strip() else []


@contextmanager
def sets_lock(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "firewall-sets.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
