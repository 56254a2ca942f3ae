"""Verified bundles into `staged/`, and the install request to the root side (docs/update.md).

Nothing reaches `staged/` unverified: a download or upload is written to `incoming/` under a temp name, verified
there (signature, hashes, architecture, version rules) and only then renamed into `staged/` (same file system,
so the rename is atomic). A refusal deletes the incoming file. One bundle is kept staged at a time: staging a
new one removes the others, except one that a pending request names.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from appliance.clock import utc_now
from appliance.fileio import atomic_write
from update import errors
from update.box import BoxInfo, UpdatePaths, read_json
from update.bundle import verify_bundle
from update.manifest import load_keys
from update.policy import check_acceptable, check_can_install

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 1024 * 1048576  # the compressed image is at most 400 MB (docs/image.md); room to grow
SPACE_MARGIN = 64 * 1048576  # left free beside a staged bundle: the database and logs share the partition
SPACE_CHECK = 32 * 1048576  # a copy in looks at the free space again after this many bytes


@dataclass(frozen=True)
class Staged:
    """The bundle in `staged/`: what the web UI and `mamori update status` show before it is installed."""

    name: str  # file name in staged/, what request.json names
    version: str
    arch: str
    rollback_allowed: bool
    released: str
    notes_ja: str
    size: int
    source: str  # "download" / "upload" / "cli"
    staged_at: str


def ensure_space(upaths: UpdatePaths, needed: int) -> None:
    upaths.ensure()
    free = shutil.disk_usage(upaths.base).free
    if free < needed + SPACE_MARGIN:
        raise errors.space(needed + SPACE_MARGIN, free)


def incoming_temp(upaths: UpdatePaths, stem: str | None = None) -> Path:
    """A temp name in incoming/: fixed for a resumable download (its sha256), random for an upload."""
    upaths.ensure()
    return upaths.incoming / f"{stem or secrets.token_hex(8)}.part"


def copy_in(upaths: UpdatePaths, src: IO[bytes], limit: int = DEFAULT_LIMIT) -> Path:
    """Copy a stream (an upload, a file named on the CLI) to a temp name in incoming/, refusing more than
    `limit` bytes, and stopping while SPACE_MARGIN is still free (the length of a stream is not known before:
    the free space is looked at every SPACE_CHECK bytes); the temp file is removed on any failure."""
    tmp = incoming_temp(upaths)
    try:
        with open(tmp, "wb") as out:
            total, next_check = 0, 0
            while chunk := src.read(1 << 20):
                if total >= next_check:
                    ensure_space(upaths, SPACE_CHECK)
                    next_check = total + SPACE_CHECK
                total += len(chunk)
                if total > limit:
                    raise errors.too_big(limit)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def stage(upaths: UpdatePaths, box: BoxInfo, tmp: Path, source: str) -> Staged:
    """Verify `tmp` (a file in incoming/) and move it into staged/; raises UpdateRefused and removes `tmp`."""
    try:
        bundle = verify_bundle(tmp, load_keys(upaths.keys_dir))
        check_acceptable(bundle.manifest, box)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    m = bundle.manifest
    name = f"mamori-{m.version}-{m.arch}.tar"
    staged = Staged(name, str(m.version), m.arch, m.rollback_allowed, m.released, bundle.notes_ja, bundle.size,
                    source, utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
    os.chmod(tmp, 0o640)
    os.replace(tmp, upaths.staged / name)
    atomic_write(upaths.base / "staged.json", json.dumps(asdict(staged), ensure_ascii=False), mode=0o640)
    _prune(upaths, keep=name)
    return staged


def _prune(upaths: UpdatePaths, keep: str) -> None:
    pending = (read_json(upaths.request) or {}).get("bundle")
    for path in upaths.staged.iterdir():
        if path.name not in (keep, pending):
            path.unlink(missing_ok=True)
            log.info("removed older staged bundle %s", path.name)


def current_staged(upaths: UpdatePaths) -> Staged | None:
    """The staged bundle, if its file is still there."""
    data = read_json(upaths.base / "staged.json")
    if not data:
        return None
    try:
        staged = Staged(**data)
    except TypeError:
        return None
    return staged if (upaths.staged / staged.name).is_file() else None


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot's id (new at every boot): a request records it, so that one taken in an earlier boot and
    never answered is known to have been cut off by a power cut or reset, not to be installing still."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _unanswered(upaths: UpdatePaths) -> dict | None:
    """The request the root side took and has not answered in result.json yet."""
    taken = read_json(upaths.taken)
    if not taken or (read_json(upaths.result) or {}).get("id") == taken.get("id"):
        return None
    return taken


def _from_an_earlier_boot(request: dict) -> bool:
    recorded, now = request.get("boot_id"), boot_id()
    return bool(recorded and now and recorded != now)


def interrupted(upaths: UpdatePaths) -> dict | None:
    """The request the root side took in an earlier boot and never answered (the box lost power or was reset
    while writing; the running slot was never touched): nothing will install it any more."""
    taken = _unanswered(upaths)
    return taken if taken and _from_an_earlier_boot(taken) else None


def in_progress(upaths: UpdatePaths) -> dict | None:
    """The request that is waiting or being installed (None when the last one has its result, or was cut off
    by a reboot: otherwise a power cut during an install would refuse every later one as busy, for good)."""
    waiting = read_json(upaths.request)
    if waiting:
        return waiting
    taken = _unanswered(upaths)
    return taken if taken and not _from_an_earlier_boot(taken) else None


def request_install(upaths: UpdatePaths, box: BoxInfo, reboot: str, actor: str) -> dict:
    """Ask the root side to install the staged bundle: write request.json (atomically). `reboot` is "now" or
    "at:<UTC ISO>". Refused on a box that is not an image box, while another install runs, with nothing
    staged, or when the staged version already failed its trial boot here."""
    check_can_install(box)
    if in_progress(upaths):
        raise errors.busy()
    staged = current_staged(upaths)
    if staged is None:
        raise errors.UpdateRefused("入れる更新がありません。先に確認するか、更新ファイルを読み込んでください。",
                                   "nothing is staged: check or upload first", code="update.nothing")  # fmt: skip
    if box.rolled_back(staged.version):
        raise errors.failed_here(staged.version)
    if not (reboot == "now" or reboot.startswith("at:")):
        raise ValueError(f"bad reboot value {reboot!r}")
    request = {
        "id": secrets.token_hex(8),
        "bundle": staged.name,
        "version": staged.version,
        "reboot": reboot,
        "requested_by": actor,
        "requested_at": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "boot_id": boot_id(),  # the root side ignores it; see interrupted()
    }
    atomic_write(upaths.request, json.dumps(request, ensure_ascii=False), mode=0o640)
    return request


def cancel_request(upaths: UpdatePaths) -> dict:
    """Withdraw a request the root side has not taken yet. The rename is atomic: either the root side took the
    file first (then it is too late, and this says so) or it never sees it."""
    waiting = read_json(upaths.request)
    try:
        os.rename(upaths.request, upaths.base / "request.cancelled.json")
    except FileNotFoundError:
        raise errors.UpdateRefused(
            "取りやめられる更新の依頼はありません（すでに書き込みが始まっているか、依頼がありません）。",
            "no waiting install request (already started, or none)",
            code="update.nothing",
        ) from None
    return waiting or {}


def progress(upaths: UpdatePaths, request_id: str | None = None, limit: int = 200) -> list[dict]:
    """The installer's progress lines (of one request, when given); malformed lines are skipped."""
    try:
        lines = upaths.progress.read_text(encoding="utf-8").splitlines()[-limit:]
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and (request_id is None or item.get("id") == request_id):
            out.append(item)
    return out
