"""What this box is, for an update: its running image version, architecture and slots; and where the update
files live (docs/update.md, the contract with the image's root installer).

The system paths (trusted keys, IMAGE_VERSION) are under `/` on a box. A test or lab sets MAMORI_UPDATE_ROOT
to a directory of its own instead; the root installer never reads it (it checks the bundle again against the
image's own keys), so this redirects only what the control plane believes, never what gets installed.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from appliance.paths import Paths
from update.version import NotAVersion, Version

ROOT_ENV = "MAMORI_UPDATE_ROOT"
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class UpdatePaths:
    """The update directory inside the state directory, and the image's system files."""

    state_dir: Path
    system_root: Path = Path("/")

    @classmethod
    def of(cls, paths: Paths) -> UpdatePaths:
        return cls(paths.state_dir, Path(os.environ.get(ROOT_ENV) or "/"))

    @property
    def base(self) -> Path:
        return self.state_dir / "update"

    @property
    def staged(self) -> Path:
        return self.base / "staged"

    @property
    def incoming(self) -> Path:
        """Downloads and uploads while they are not yet verified; never read by the root side."""
        return self.base / "incoming"

    @property
    def request(self) -> Path:
        return self.base / "request.json"

    @property
    def taken(self) -> Path:
        return self.base / "request.taken.json"

    @property
    def progress(self) -> Path:
        return self.base / "progress.jsonl"

    @property
    def result(self) -> Path:
        return self.base / "result.json"

    @property
    def boot(self) -> Path:
        return self.base / "boot.json"

    @property
    def keys_dir(self) -> Path:
        return self.system_root / "usr/share/mamori/update-keys"

    @property
    def image_version_file(self) -> Path:
        return self.system_root / "usr/share/mamori/IMAGE_VERSION"

    def ensure(self) -> None:
        for d in (self.base, self.staged, self.incoming):
            d.mkdir(parents=True, exist_ok=True, mode=0o750)


def read_json(path: Path) -> dict | None:
    """A JSON object written by the other side, or None when it is missing or unreadable (never raises:
    a half-written or hostile file must not take a status page down)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class BoxInfo:
    """`version` None: no IMAGE_VERSION, i.e. not an image box (a lab, a developer's machine)."""

    version: Version | None
    arch: str
    boot: dict | None  # boot.json, as the root side wrote it

    def rolled_back(self, version: str) -> bool:
        """Did `version` fail its trial boot here (the box fell back)? boot.json keeps the last trial: a staged
        bundle of that version would fail the same way, so it is not offered or installed again."""
        trial = (self.boot or {}).get("trial")
        return (
            isinstance(trial, dict)
            and trial.get("outcome") == "rolled-back"
            and trial.get("version") == version
        )

    @property
    def has_fallback_slot(self) -> bool:
        """False only when boot.json says there is no second slot (a first boot that did not add it)."""
        return not (self.boot and "fallback" in self.boot and self.boot["fallback"] is None)


def machine_arch(machine: str | None = None) -> str:
    m = machine or platform.machine()
    return _MACHINES.get(m, m)


def box_info(upaths: UpdatePaths) -> BoxInfo:
    try:
        version: Version | None = Version.parse(upaths.image_version_file.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, NotAVersion):
        version = None
    return BoxInfo(version, machine_arch(), read_json(upaths.boot))
