"""Building a backup: a consistent snapshot of the config and the state directory, then a tar, encrypted.

What goes in: the config file, and everything durable under the state directory — the SQLite databases
(copied with SQLite's online backup API, so a live WAL database is captured consistently, never as a torn
file copy), keys (WireGuard, audit, TLS) and any other files. What stays out: run/ (rendered engine
configs and pid files, re-rendered at start), caches, the backups themselves, SQLite -wal/-shm/-journal
files, locks, sockets and temp files. Symlinks and special files are not followed; they are listed as
skipped in the manifest and logged, never dropped silently.

Every file is first copied into a private staging directory, and hashed and archived from that copy, so
the hash in the manifest is always the hash of the bytes in the archive even if the box keeps writing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import socket
import sqlite3
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import yaml

from appliance import __version__
from appliance.backup.crypto import EncryptingWriter
from appliance.backup.manifest import CONFIG_NAME, MANIFEST_NAME, STATE_PREFIX, Manifest, ManifestFile
from appliance.clock import wall
from appliance.paths import Paths

log = logging.getLogger(__name__)

EXCLUDED_DIRS = frozenset({"run", "backups", "cache", "caches", "tmp"})
# Caches of other areas, relative to the state dir: re-created on demand, often large.
CACHE_PATHS = frozenset({"ids/suricata-update"})
EXCLUDED_SUFFIXES = (".tmp", ".lock", ".pid", ".sock", "-wal", "-shm", "-journal")


def _is_sqlite(path: Path) -> bool:
    """Asked of SQLite itself, never by opening the file here: closing a descriptor of a database file drops
    every POSIX lock this process holds on it, those of the daemon's own connections included (SQLite's
    documented caveat), and another process (the web UI) could then write beside them. SQLite's own opens
    share one record per file within the process and never drop another connection's lock."""
    if path.stat().st_size < 512:  # not even one page (an empty file would open as an empty database)
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def snapshot_sqlite(src: Path, dst: Path) -> None:
    """Copy a (possibly live, WAL-mode) database with the online backup API: a consistent point in time."""
    source = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _excluded_file(name: str) -> bool:
    return name.endswith(EXCLUDED_SUFFIXES) or name.startswith(".mamori-")


def _skip_dir(state_dir: Path, top: Path, name: str, extra: set[Path]) -> bool:
    full = (top / name).resolve()
    rel = (top / name).relative_to(state_dir).as_posix()
    return (
        (top == state_dir and name in EXCLUDED_DIRS)
        or rel in CACHE_PATHS
        or name.startswith(".mamori-")
        or full in extra
    )


def stage_state(
    paths: Paths, staging: Path, exclude: set[Path]
) -> tuple[list[ManifestFile], dict[str, int], list[str]]:
    """Copy the durable state into `staging/state`; returns the file entries, directory modes and skips."""
    state_dir = paths.state_dir
    files: list[ManifestFile] = []
    dirs: dict[str, int] = {}
    skipped: list[str] = []
    excluded = {p.resolve() for p in exclude}
    for top_s, dirnames, filenames in os.walk(state_dir, followlinks=False):
        top = Path(top_s)
        rel_top = top.relative_to(state_dir)
        arc_top = (Path("state") / rel_top).as_posix()
        for d in [d for d in dirnames if (top / d).is_symlink()]:
            log.warning("backup: skipping %s (a symlink to a directory)", top / d)
            skipped.append(f"{arc_top}/{d}")
        dirnames[:] = sorted(
            d for d in dirnames if not (top / d).is_symlink() and not _skip_dir(state_dir, top, d, excluded)
        )
        dirs[arc_top] = stat.S_IMODE(top.stat().st_mode)
        (staging / arc_top).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            src = top / name
            arcname = f"{arc_top}/{name}"
            if _excluded_file(name):
                continue
            try:
                st = src.lstat()
                if not stat.S_ISREG(st.st_mode):
                    log.warning("backup: skipping %s (not a regular file)", src)
                    skipped.append(arcname)
                    continue
                dst = staging / arcname
                if _is_sqlite(src):
                    snapshot_sqlite(src, dst)
                else:
                    shutil.copyfile(src, dst)
            except FileNotFoundError:
                # Deleted between listing and copying (a temp file of another process): not state.
                log.warning("backup: %s vanished while being backed up; skipped", src)
                skipped.append(arcname)
                continue
            files.append(ManifestFile(arcname, _sha256(dst), dst.stat().st_size, stat.S_IMODE(st.st_mode)))
    return files, dirs, skipped


def _clinic_name(config_text: bytes) -> str:
    """Only for labelling the archive; a config that does not parse is still backed up (and logged)."""
    try:
        data = yaml.safe_load(config_text)
        return str(data["clinic"]["name"])
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        log.warning("backup: cannot read the clinic name from the config: %s", exc)
        return ""


def build_manifest(paths: Paths, staging: Path, exclude: set[Path], now: float) -> Manifest:
    """Stage the config and the state, and describe them."""
    config_bytes = paths.config.read_bytes()
    (staging / CONFIG_NAME).write_bytes(config_bytes)
    files, dirs, skipped = stage_state(paths, staging, exclude)
    cfg_mode = stat.S_IMODE(paths.config.stat().st_mode)
    config_entry = ManifestFile(CONFIG_NAME, _sha256(staging / CONFIG_NAME), len(config_bytes), cfg_mode)
    return Manifest(
        created=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),  # for machines: UTC
        created_ts=now,
        software_version=__version__,
        clinic=_clinic_name(config_bytes),
        hostname=socket.gethostname(),
        files=[config_entry, *files],
        dirs=dirs,
        skipped=skipped,
    )


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(mtime)
    tar.addfile(info, io.BytesIO(data))


def write_archive(out: BinaryIO, passphrase: str, manifest: Manifest, staging: Path) -> None:
    """Encrypt manifest + staged members into `out` (a tar stream inside the chunked AEAD container)."""
    meta = {
        "created": manifest.created,
        "software_version": manifest.software_version,
        "clinic": manifest.clinic,
    }
    writer = EncryptingWriter(out, passphrase, meta)
    with tarfile.open(fileobj=writer, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        _add_bytes(tar, MANIFEST_NAME, manifest.to_json(), manifest.created_ts)
        for entry in manifest.files:
            info = tarfile.TarInfo(entry.path)
            info.size, info.mode, info.mtime = entry.size, entry.mode, int(manifest.created_ts)
            with open(staging / entry.path, "rb") as fh:
                tar.addfile(info, fh)
    writer.close()


def now() -> float:
    return wall()


__all__ = ["STATE_PREFIX", "build_manifest", "snapshot_sqlite", "write_archive"]
