"""Restoring a backup: verify everything in a private temp directory first, then swap it in atomically.

`unpack` decrypts the whole archive (every chunk authenticated), extracts only members the manifest
names, re-hashes each one, checks the SQLite databases and the config; nothing of the live box is touched
until all of that passed. `swap_in` then renames the live state directory aside, renames the new one in,
writes the config, and on any failure puts the old directory and config back, so a failed restore never
leaves a half-restored box. The staging directory sits next to the state directory so that the renames
stay on one filesystem (and are atomic).
Non-goal: stopping a running daemon; restart `mamori daemon` after a restore so it reopens the new files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.backup.archive import EXCLUDED_DIRS
from appliance.backup.crypto import ArchiveHeader, decrypt_stream
from appliance.backup.errors import BackupError, CorruptArchiveError, RestoreError
from appliance.backup.manifest import CONFIG_NAME, MANIFEST_NAME, Manifest, ManifestFile
from appliance.fileio import atomic_write
from appliance.paths import Paths

log = logging.getLogger(__name__)

MAX_MANIFEST = 16 << 20
SPACE_MARGIN = 64 << 20


@dataclass(frozen=True)
class Unpacked:
    """A verified archive laid out in `root`: `root/config.yaml` and `root/state/...`."""

    root: Path
    header: ArchiveHeader
    manifest: Manifest

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME


def unpack(archive: Path, passphrase: str, staging: Path) -> Unpacked:
    """Decrypt and verify `archive` into `staging` (an empty private directory). Raises BackupError."""
    payload = staging / "payload.tar.gz"
    try:
        with open(archive, "rb") as src, _private_file(payload) as dst:
            header = decrypt_stream(src, passphrase, dst)
    except FileNotFoundError:
        raise BackupError(f"バックアップファイル {archive} がありません", f"backup file {archive} not found",
                          code="backup.missing") from None  # fmt: skip
    root = staging / "tree"
    root.mkdir(mode=0o700)
    try:
        manifest = _extract(payload, root)
    except (tarfile.TarError, EOFError, OSError) as exc:
        log.warning("backup: payload of %s does not unpack: %s", archive, exc)
        raise CorruptArchiveError("中身を展開できません", f"the payload does not unpack: {exc}") from None
    finally:
        payload.unlink(missing_ok=True)
    unpacked = Unpacked(root=root, header=header, manifest=manifest)
    _check_databases(unpacked)
    _check_config(unpacked)
    return unpacked


def _private_file(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _extract(payload: Path, root: Path) -> Manifest:
    """Extract members one by one (never extractall): names come from the manifest, hashes are re-checked."""
    with tarfile.open(payload, mode="r:gz") as tar:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isfile() or first.size > MAX_MANIFEST:
            raise CorruptArchiveError("目録が先頭にありません", "the manifest is not the first member")
        manifest = Manifest.from_json(_read_member(tar, first))
        _check_space(manifest, root)
        expected = manifest.by_path()
        seen: set[str] = set()
        # tar.next(), not `for member in tar`: iterating restarts from the first (already read) member.
        while (member := tar.next()) is not None:
            entry = expected.get(member.name)
            if entry is None or member.name in seen or not member.isfile():
                raise CorruptArchiveError(f"目録にないファイル {member.name!r} があります",
                                          f"member {member.name!r} is not in the manifest")  # fmt: skip
            seen.add(member.name)
            _write_member(tar, member, root / member.name, entry)
        missing = sorted(set(expected) - seen)
        if missing:
            raise CorruptArchiveError(
                f"{len(missing)} 個のファイルが欠けています", f"members missing: {missing[:5]}"
            )
    for d, mode in manifest.dirs.items():
        (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / d, mode & 0o777)  # never setuid/setgid/sticky from an archive
    return manifest


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    if fh is None:
        raise CorruptArchiveError("目録を読めません", "the manifest is unreadable")
    return fh.read()


def _check_space(manifest: Manifest, root: Path) -> None:
    """Refuse up front rather than fill the disk of a running box halfway through."""
    need = sum(f.size for f in manifest.files)
    free = shutil.disk_usage(root).free
    if need + SPACE_MARGIN > free:
        raise BackupError(
            f"復元に必要な空き容量がありません（必要 {need // 2**20} MB、空き {free // 2**20} MB）",
            f"not enough free space to restore (need {need // 2**20} MB, free {free // 2**20} MB)",
            code="backup.space",
        )


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dst: Path, entry: ManifestFile) -> None:
    """Write one member, never more bytes than the manifest says, and check its hash."""
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fh = tar.extractfile(member)
    if fh is None or member.size != entry.size:
        raise CorruptArchiveError(
            f"{member.name} の大きさが目録と違います", f"{member.name} has the wrong size"
        )
    digest = hashlib.sha256()
    with _private_file(dst) as out:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != entry.sha256:
        log.warning("backup: %s fails its sha256 in the manifest", member.name)
        raise CorruptArchiveError(
            f"{member.name} のハッシュ値が目録と一致しません", f"{member.name} fails its sha256"
        )
    os.chmod(dst, entry.mode & 0o777)


def _check_databases(unpacked: Unpacked) -> None:
    for entry in unpacked.manifest.files:
        path = unpacked.root / entry.path
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                continue
        conn = sqlite3.connect(path)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            result = str(exc)
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        if result != "ok":
            raise CorruptArchiveError(
                f"データベース {entry.path} が壊れています", f"database {entry.path}: {result}"
            )


def _check_config(unpacked: Unpacked) -> None:
    """The restored box must be able to start: the config has to load with this software version."""
    from appliance.config import parse_config
    from appliance.errors import ConfigError

    try:
        parse_config(unpacked.config.read_text(encoding="utf-8"))
    except (ConfigError, UnicodeDecodeError) as exc:
        detail = exc.text("en") if isinstance(exc, ConfigError) else str(exc)
        raise BackupError(
            "バックアップ内の設定がこのバージョンでは読み込めません。機器は変更していません",
            f"the config in the backup does not load with this version ({detail}); the box was not changed",
            code="backup.config",
        ) from None


def swap_in(paths: Paths, unpacked: Unpacked, aside: Path) -> None:
    """Put the verified state live. All or nothing: on failure the old state dir and config are put back."""
    state, config = paths.state_dir, paths.config
    old_config = config.read_bytes() if config.exists() else None
    old_mode = config.stat().st_mode & 0o7777 if config.exists() else None
    had_state = state.exists()
    undo: list[tuple[Path, Path]] = []  # (now at, put back to)
    try:
        if had_state:
            os.rename(state, aside)
            undo.append((aside, state))
        os.rename(unpacked.state, state)
        undo.append((state, unpacked.state))
        for name in sorted(EXCLUDED_DIRS):
            if (aside / name).is_dir():
                os.rename(aside / name, state / name)
                undo.append((state / name, aside / name))
        new_mode = old_mode if old_mode is not None else unpacked.manifest.by_path()[CONFIG_NAME].mode & 0o777
        install_config(config, unpacked.config.read_bytes(), new_mode)
        _fsync_dir(state.parent)
    except OSError as exc:
        log.error("backup: restore failed while swapping in, putting the old state back: %s", exc)
        _undo(undo, config, old_config, old_mode)
        raise RestoreError(
            f"復元の途中で失敗したため、元の状態に戻しました（{exc}）",
            f"restore failed while swapping in; the previous state was put back ({exc})",
        ) from exc


def install_config(config: Path, data: bytes, mode: int) -> None:
    """Separate so tests can inject a failure at the last step of a swap."""
    atomic_write(config, data, mode=mode)


def _undo(
    undo: list[tuple[Path, Path]], config: Path, old_config: bytes | None, old_mode: int | None
) -> None:
    for now_at, back_to in reversed(undo):
        os.rename(now_at, back_to)
    if old_config is not None and (not config.exists() or config.read_bytes() != old_config):
        atomic_write(config, old_config, mode=old_mode if old_mode is not None else 0o640)
    elif old_config is None:
        config.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
