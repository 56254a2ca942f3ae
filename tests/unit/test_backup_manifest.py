"""The manifest parser: archive contents are untrusted; anything odd is refused, never guessed at."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.backup.errors import CorruptArchiveError
from appliance.backup.manifest import Manifest, ManifestFile, check_member_name

GOOD = Manifest(
    created="2026-11-26T03:00:00+09:00", created_ts=1.0, software_version="0.1.0", clinic="やまだ内科",
    hostname="mamori", files=[ManifestFile("config.yaml", "a" * 64, 10, 0o640),
                              ManifestFile("state/keys/wg-server.key", "b" * 64, 45, 0o600)],
    dirs={"state": 0o750, "state/keys": 0o700},
)  # fmt: skip


def variant(**change: Any) -> bytes:
    raw = json.loads(GOOD.to_json())
    raw.update(change)
    return json.dumps(raw).encode()


def test_round_trip() -> None:
    assert Manifest.from_json(GOOD.to_json()) == GOOD


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        variant(format=2),
        variant(files="nope"),
        variant(files=[{"path": "config.yaml"}]),
        variant(files=[{"path": "config.yaml", "sha256": "a" * 64, "size": 1, "mode": 420, "extra": 1}]),
        variant(files=[{"path": "config.yaml", "sha256": "short", "size": 1, "mode": 420}]),
        variant(files=[{"path": "config.yaml", "sha256": "a" * 64, "size": -1, "mode": 420}]),
        variant(files=[{"path": "config.yaml", "sha256": "a" * 64, "size": 1, "mode": "rwx"}]),
        variant(files=[{"path": "state/x", "sha256": "a" * 64, "size": 1, "mode": 420}]),  # no config
        variant(files=[{"path": "config.yaml", "sha256": "a" * 64, "size": 1, "mode": 420}] * 2),
        variant(dirs=["state"]),
        variant(dirs={"state/../..": 0o700}),
        variant(dirs={"state/keys": "0700"}),
        variant(unknown_field=True),
    ],
)
def test_malformed_manifests_are_refused(data: bytes) -> None:
    with pytest.raises(CorruptArchiveError):
        Manifest.from_json(data)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("config.yaml", True),
        ("state/mamori.db", True),
        ("state/keys/wg-server.key", True),
        ("state", False),
        ("keys/wg-server.key", False),
        ("/state/x", False),
        ("state/../etc/passwd", False),
        ("state/./x", False),
        ("state//x", False),
        ("state/x/", False),
        ("state/a\\..\\b", False),
        ("state/x\x00", False),
        ("config.yaml/x", False),
    ],
)
def test_member_names(name: str, ok: bool) -> None:
    if ok:
        check_member_name(name)
    else:
        with pytest.raises(CorruptArchiveError):
            check_member_name(name)
