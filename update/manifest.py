"""A bundle's manifest: the signed text that names the version and the SHA-256 of every file in the bundle.

The signature (manifest.sig) is Ed25519 over the exact bytes, as `openssl pkeyutl -sign -rawin` makes it
(scripts/image-bundle.sh); the same keys sign the vendor's index.json. Keys are PEM public keys, one per
`*.pem` file in the update-keys directory; any one of them may have signed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from update import errors
from update.version import NotAVersion, Version

log = logging.getLogger(__name__)

MAX_MANIFEST = 16 * 1024
ARCHES = ("amd64", "arm64")
_HASH_LINE = re.compile(r"([0-9a-f]{64})  ([A-Za-z0-9][A-Za-z0-9._-]{0,63})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def load_keys(key_dir: Path) -> list[Ed25519PublicKey]:
    """The trusted keys; a file that is not an Ed25519 public key is skipped and logged, never trusted."""
    keys = []
    for path in sorted(key_dir.glob("*.pem")) if key_dir.is_dir() else []:
        try:
            key = load_pem_public_key(path.read_bytes())
        except (ValueError, OSError) as exc:
            log.warning("update key %s is not readable (%s): skipped", path, exc)
            continue
        if isinstance(key, Ed25519PublicKey):
            keys.append(key)
        else:
            log.warning("update key %s is not an Ed25519 key: skipped", path)
    return keys


def verify_signature(data: bytes, sig: bytes, keys: list[Ed25519PublicKey]) -> None:
    """Raise the signature refusal unless one of `keys` signed `data`."""
    for key in keys:
        try:
            key.verify(sig, data)
            return
        except InvalidSignature:
            continue
    raise errors.signature()


@dataclass(frozen=True)
class Manifest:
    version: Version
    root_size: int
    root_sha256: str
    arch: str = "amd64"
    min_from: Version | None = None
    rollback_allowed: bool = False
    released: str = ""
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST:
            raise errors.fmt("manifest が大きすぎます", "manifest too large")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise errors.fmt("manifest が文字として読めません", "manifest is not UTF-8") from None
        if not lines or lines[0].strip() != "mamori-update 1":
            raise errors.fmt("先頭行が mamori-update 1 ではありません", "first line is not 'mamori-update 1'")
        fields: dict[str, str] = {}
        files: dict[str, str] = {}
        for line in lines[1:]:
            if not line.strip():
                continue
            m = _HASH_LINE.fullmatch(line)
            if m:
                if m.group(2) in files:
                    raise errors.fmt(f"{m.group(2)} が二度あります", f"{m.group(2)} listed twice")
                files[m.group(2)] = m.group(1)
                continue
            key, _, value = line.partition(" ")
            if key in fields:
                raise errors.fmt(f"{key} が二度あります", f"{key} given twice")
            fields[key] = value.strip()
        return cls._from_fields(fields, files)

    @classmethod
    def _from_fields(cls, fields: dict[str, str], files: dict[str, str]) -> Manifest:
        for key in ("version", "root-size", "root-sha256"):
            if key not in fields:
                raise errors.fmt(f"{key} がありません", f"{key} missing")
        try:
            version = Version.parse(fields["version"])
            min_from = Version.parse(fields["min-from-version"]) if "min-from-version" in fields else None
        except NotAVersion as exc:
            raise errors.fmt(exc.text("ja"), exc.text("en")) from None
        if not fields["root-size"].isdigit() or not re.fullmatch(r"[0-9a-f]{64}", fields["root-sha256"]):
            raise errors.fmt("root-size か root-sha256 が読めません", "bad root-size or root-sha256")
        arch = fields.get("arch", "amd64")
        if arch not in ARCHES:
            raise errors.fmt(f"arch {arch[:20]!r} は知らない種類です", f"unknown arch {arch[:20]!r}")
        rollback = fields.get("rollback-allowed", "no")
        if rollback not in ("yes", "no"):
            raise errors.fmt("rollback-allowed は yes か no です", "rollback-allowed must be yes or no")
        released = fields.get("released", "")
        if released and not _DATE.fullmatch(released):
            raise errors.fmt("released は YYYY-MM-DD です", "released must be YYYY-MM-DD")
        return cls(version, int(fields["root-size"]), fields["root-sha256"], arch, min_from,
                   rollback == "yes", released, files)  # fmt: skip
