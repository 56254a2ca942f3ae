"""The manifest: what an archive holds and the sha256 of every member, written first inside the archive.

The manifest travels inside the encrypted payload (it names the clinic and lists key files), and is
therefore authenticated by the same AEAD tags as everything else. Restore trusts nothing in it blindly:
every path is checked to stay inside the state directory and every member is hashed again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from appliance.backup.errors import CorruptArchiveError

MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "config.yaml"
STATE_PREFIX = "state/"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ManifestFile:
    path: str
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class Manifest:
    """What was backed up, from which box and software, and when."""

    created: str
    created_ts: float
    software_version: str
    clinic: str
    hostname: str
    files: list[ManifestFile] = field(default_factory=list)
    dirs: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    format: int = MANIFEST_FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse and check types and paths; an archive made by anything else is refused, not guessed at."""
        try:
            raw = json.loads(data.decode("utf-8"))
            files = [ManifestFile(**f) for f in raw.pop("files")]
            manifest = cls(files=files, **raw)
            manifest.check()
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError):
            raise CorruptArchiveError("目録を読めません", "the manifest is unreadable") from None
        return manifest

    def check(self) -> None:
        if self.format != MANIFEST_FORMAT:
            raise CorruptArchiveError("目録の形式が不明です", f"unknown manifest format {self.format!r}")
        seen: set[str] = set()
        for f in self.files:
            if not (isinstance(f.sha256, str) and len(f.sha256) == 64 and type(f.size) is int and f.size >= 0
                    and type(f.mode) is int):  # fmt: skip
                raise CorruptArchiveError("目録の内容が不正です", "manifest entry is malformed")
            check_member_name(f.path)
            if f.path in seen:
                raise CorruptArchiveError("目録に同じファイルが2回あります", f"{f.path} listed twice")
            seen.add(f.path)
        for d, mode in self.dirs.items():
            if d != "state":
                check_member_name(d)
            if type(mode) is not int:
                raise CorruptArchiveError("目録の内容が不正です", "manifest directory entry is malformed")
        if CONFIG_NAME not in seen:
            raise CorruptArchiveError("設定ファイルが含まれていません", "the archive holds no config file")

    def by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}


def check_member_name(name: str) -> None:
    """Only `config.yaml` and relative paths under `state/` without `..`: no member may land elsewhere."""
    if name == CONFIG_NAME:
        return
    if not isinstance(name, str):
        raise CorruptArchiveError("不正なファイル名があります", "a member name is not text")
    path = PurePosixPath(name)
    parts = path.parts
    if (
        path.is_absolute()
        or len(parts) < 2
        or parts[0] != "state"
        or any(p in ("", ".", "..") for p in parts)
        or path.as_posix() != name  # "state/./x", "state//x": one file, one spelling
        or "\\" in name
        or "\x00" in name
    ):
        raise CorruptArchiveError(f"不正なファイル名があります: {name!r}", f"unsafe member name: {name!r}")


def as_dict(manifest: Manifest) -> dict[str, Any]:
    return asdict(manifest)
