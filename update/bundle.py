"""Read a bundle (a plain tar) and prove it is what its signed manifest says, without extracting it.

Accepted members are the fixed names below, each once, each a regular file: a link, a device, a path with a
directory or a duplicate name (which `tar -x` would let override the first) is a refusal. The manifest is
checked against the keys first; only then are the other members hashed (streamed, never held in memory).
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from update import errors
from update.manifest import MAX_MANIFEST, Manifest, verify_signature

REQUIRED = ("root.img.zst", "vmlinuz", "initrd.img")
OPTIONAL = ("notes-ja.txt",)
SIGNED = ("manifest", "manifest.sig")
MAX_NOTES = 16 * 1024


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest, Japanese release notes (if any) and total size."""

    manifest: Manifest
    notes_ja: str
    size: int


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    found: dict[str, tarfile.TarInfo] = {}
    allowed = (*SIGNED, *REQUIRED, *OPTIONAL)
    for info in tar:
        if info.name not in allowed:
            raise errors.fmt(f"知らないファイル {info.name[:60]!r} が入っています",
                             f"unexpected member {info.name[:60]!r}")  # fmt: skip
        if not info.isreg():
            raise errors.fmt(
                f"{info.name} が普通のファイルではありません", f"{info.name} is not a regular file"
            )
        if info.name in found:
            raise errors.fmt(f"{info.name} が二つ入っています", f"{info.name} appears twice")
        found[info.name] = info
    for name in (*SIGNED, *REQUIRED):
        if name not in found:
            raise errors.fmt(f"{name} がありません", f"{name} missing")
    return found


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo, limit: int) -> bytes:
    if info.size > limit:
        raise errors.fmt(f"{info.name} が大きすぎます", f"{info.name} too large")
    fh = tar.extractfile(info)
    assert fh is not None  # a regular file always has a body
    return fh.read()


def _sha256(tar: tarfile.TarFile, info: tarfile.TarInfo) -> str:
    fh = tar.extractfile(info)
    assert fh is not None
    digest = hashlib.sha256()
    while chunk := fh.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def verify_bundle(path: Path, keys: list[Ed25519PublicKey]) -> Bundle:
    """The bundle at `path`, verified (signature first, then every file's hash); raises UpdateRefused."""
    try:
        tar = tarfile.open(path, "r:")
    except (tarfile.TarError, OSError):
        raise errors.fmt("tar ファイルではありません", "not a tar file") from None
    with tar:
        try:
            members = _members(tar)
            data = _read(tar, members["manifest"], MAX_MANIFEST)
            verify_signature(data, _read(tar, members["manifest.sig"], 1024), keys)
            manifest = Manifest.parse(data)
            for name, info in members.items():
                if name in SIGNED:
                    continue
                if name not in manifest.files:
                    raise errors.fmt(
                        f"{name} のハッシュが manifest にありません", f"{name} not in the manifest"
                    )
                if _sha256(tar, info) != manifest.files[name]:
                    raise errors.hash_mismatch(name)
            for name in manifest.files:
                if name not in members:
                    raise errors.fmt(f"manifest の {name} がありません", f"{name} in the manifest is missing")
            notes = ""
            if "notes-ja.txt" in members:
                try:
                    notes = _read(tar, members["notes-ja.txt"], MAX_NOTES).decode("utf-8")
                except UnicodeDecodeError:
                    raise errors.fmt(
                        "notes-ja.txt が文字として読めません", "notes-ja.txt is not UTF-8"
                    ) from None
        except (tarfile.TarError, EOFError, OSError):
            raise errors.fmt("tar ファイルが途中で切れています", "truncated tar file") from None
    return Bundle(manifest, notes, path.stat().st_size)
