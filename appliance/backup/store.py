"""Where archives are kept: the backup directory, naming, listing, pruning to N generations, export.

Only files whose names this module makes (`mamori-backup-YYYYmmdd-HHMMSS[-k].mbk`) are ever pruned: a
backup directory pointed at a USB stick or a share with other files on it never loses them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from appliance.backup.crypto import ArchiveHeader, read_header
from appliance.backup.errors import BackupError
from appliance.clock import show
from appliance.paths import Paths

log = logging.getLogger(__name__)

SUFFIX = ".mbk"
_NAME = re.compile(r"^mamori-backup-\d{8}-\d{6}(?:-\d+)?\.mbk$")


@dataclass(frozen=True)
class ArchiveInfo:
    """One archive as seen without the passphrase: its plaintext header, or why it could not be read."""

    path: Path
    size: int
    mtime: float
    header: ArchiveHeader | None
    problem: str = ""


def default_dir(paths: Paths) -> Path:
    return paths.state_dir / "backups"


def resolve_dir(paths: Paths, configured: str | Path | None) -> Path:
    return Path(configured) if configured else default_dir(paths)


def new_path(directory: Path, when: float, tz: str | None = None) -> Path:
    """A fresh name sorting by time, in the clinic's zone `tz` (people pick an archive by its name). Later
    backups in the same second get a higher counter than any existing one, so that a name freed by pruning
    is never reused for a newer backup."""
    stamp = show(when, tz, "%Y%m%d-%H%M%S")
    same = [p for p in generations(directory) if _generation_key(p)[0] == stamp]
    if not same:
        return directory / f"mamori-backup-{stamp}{SUFFIX}"
    return directory / f"mamori-backup-{stamp}-{max(_generation_key(p)[1] for p in same) + 1}{SUFFIX}"


def _generation_key(path: Path) -> tuple[str, int]:
    stem = path.name[len("mamori-backup-") : -len(SUFFIX)]
    parts = stem.split("-")
    return "-".join(parts[:2]), int(parts[2]) if len(parts) > 2 else 1


def generations(directory: Path) -> list[Path]:
    """Our archives in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _NAME.match(p.name) and p.is_file()]
    return sorted(found, key=_generation_key)


def list_archives(directory: Path) -> list[ArchiveInfo]:
    """Newest first, each with its plaintext header (no passphrase needed)."""
    infos: list[ArchiveInfo] = []
    for path in reversed(generations(directory)):
        st = path.stat()
        try:
            with open(path, "rb") as fh:
                header: ArchiveHeader | None = read_header(fh)
            problem = ""
        except BackupError as exc:
            log.warning("backup: %s has an unreadable header: %s", path, exc)
            header, problem = None, exc.code
        infos.append(ArchiveInfo(path, st.st_size, st.st_mtime, header, problem))
    return infos


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives; returns what was deleted."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    doomed = generations(directory)[:-keep]
    for path in doomed:
        path.unlink()
        log.info("backup: pruned old generation %s", path)
    return doomed


def export(archive: Path, dest_dir: Path) -> Path:
    """Copy an archive into `dest_dir` (e.g. a mounted USB stick): temp file, fsync, rename."""
    if not archive.is_file():
        raise BackupError(f"バックアップファイル {archive} がありません", f"backup file {archive} not found",
                          code="backup.missing")  # fmt: skip
    if not dest_dir.is_dir():
        raise BackupError(f"書き出し先 {dest_dir} がありません（USBメモリは挿さっていますか）",
                          f"destination {dest_dir} does not exist (is the USB stick mounted?)",
                          code="backup.export")  # fmt: skip
    target = dest_dir / archive.name
    tmp = dest_dir / f".{archive.name}.tmp"
    try:
        with open(archive, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{dest_dir} への書き出しに失敗しました（{exc.strerror}）",
                          f"export to {dest_dir} failed ({exc.strerror})", code="backup.export") from exc  # fmt: skip
    return target
