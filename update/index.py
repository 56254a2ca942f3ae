"""The vendor's signed index (`index.json` + `index.json.sig`, signed with the same keys as bundles): which
versions exist, their bundle file, size and sha256, Japanese release notes, and the rollout share.

The bundle is still verified on its own after download; the index's sha256 and size only let the box stop
a wrong or endless download early and resume the right one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from update import errors
from update.manifest import ARCHES, verify_signature
from update.version import NotAVersion, Version

MAX_INDEX = 256 * 1024
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.tar")


@dataclass(frozen=True)
class Release:
    version: Version
    arch: str
    file: str
    size: int
    sha256: str
    rollout: int  # percent of boxes that should take it now
    notes_ja: str
    released: str


def _release(item: object) -> Release:
    if not isinstance(item, dict):
        raise errors.fmt("index の項目が読めません", "index entry is not an object")
    try:
        version = Version.parse(str(item["version"]))
        arch, file, size, sha = item["arch"], item["file"], item["size"], item["sha256"]
        rollout = item.get("rollout", 100)
        notes, released = item.get("notes_ja", ""), item.get("released", "")
    except KeyError as exc:
        raise errors.fmt(f"index に {exc.args[0]} がありません", f"index entry lacks {exc.args[0]}") from None
    except NotAVersion as exc:
        raise errors.fmt(exc.text("ja"), exc.text("en")) from None
    ok = (
        arch in ARCHES and isinstance(file, str) and _FILE.fullmatch(file) is not None
        and isinstance(size, int) and size > 0 and isinstance(sha, str)
        and re.fullmatch(r"[0-9a-f]{64}", sha) is not None and isinstance(rollout, int) and 0 <= rollout <= 100
        and isinstance(notes, str) and len(notes) <= 16384 and isinstance(released, str) and len(released) <= 32
    )  # fmt: skip
    if not ok:
        raise errors.fmt("index の項目の値が正しくありません", "index entry has a bad value")
    return Release(version, arch, file, size, sha, rollout, notes, released)


def parse_index(data: bytes, sig: bytes, keys: list[Ed25519PublicKey]) -> list[Release]:
    """The releases of a signed index (signature checked first); raises UpdateRefused."""
    if len(data) > MAX_INDEX:
        raise errors.fmt("index が大きすぎます", "index too large")
    verify_signature(data, sig, keys)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise errors.fmt("index が JSON ではありません", "index is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("releases"), list):
        raise errors.fmt("index の形式（format 1）ではありません", "not an index of format 1")
    return [_release(item) for item in doc["releases"]]


def rollout_point(box_id: str, version: Version) -> float:
    """Where this box stands in a release's rollout, 0 <= point < 100: a stable hash of the box id and the
    version. Raising a release's share only adds boxes (the first 5 % stay in at 20 %); the version in the
    hash makes a different few go first for each release."""
    digest = hashlib.sha256(f"mamori-rollout\0{box_id}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100


def in_rollout(box_id: str, release: Release) -> bool:
    return rollout_point(box_id, release.version) < release.rollout


def newest_for(releases: list[Release], arch: str, box_id: str) -> Release | None:
    """The newest release for this architecture whose rollout includes this box."""
    mine = [r for r in releases if r.arch == arch and in_rollout(box_id, r)]
    return max(mine, key=lambda r: r.version, default=None)
