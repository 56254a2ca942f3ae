"""update/: the vendor's signed index, the rollout share, quiet hours in clinic time and the config section."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from appliance.clock import wall, zone
from tests.updatekit import make_bundle, make_index, make_key
from update.errors import UpdateRefused
from update.index import in_rollout, newest_for, parse_index, rollout_point
from update.manifest import load_keys
from update.model import UpdateConfig
from update.schedule import in_quiet_hours, next_quiet_start
from update.version import Version


@pytest.fixture
def signed(tmp_path):
    key = make_key(tmp_path / "keys")
    bundle = make_bundle(tmp_path / "b" / "mamori-2026.12.2-amd64.tar", key, "2026.12.2")
    index = make_index(tmp_path / "site", key, bundle, "2026.12.2", share=30)
    return key, index, load_keys(tmp_path / "keys")


def test_signed_index_parses(signed) -> None:
    _, index, keys = signed
    (release,) = parse_index(index.read_bytes(), index.with_suffix(".json.sig").read_bytes(), keys)
    assert release.version == Version.parse("2026.12.2") and release.rollout == 30
    assert release.file == "mamori-2026.12.2-amd64.tar" and release.notes_ja.startswith("セキュリティ")


def test_index_changed_after_signing_is_refused(signed) -> None:
    _, index, keys = signed
    doc = json.loads(index.read_text())
    doc["releases"][0]["rollout"] = 100  # a mirror that tries to push a release to everyone
    with pytest.raises(UpdateRefused) as info:
        parse_index(json.dumps(doc).encode(), index.with_suffix(".json.sig").read_bytes(), keys)
    assert info.value.code == "update.signature"


@pytest.mark.parametrize(
    "entry",
    [
        {"file": "../etc/passwd.tar"},
        {"file": "bundle.zip"},
        {"rollout": 101},
        {"size": -1},
        {"sha256": "xyz"},
        {"arch": "mips"},
        {"version": "latest"},
    ],
)
def test_index_bad_entries_are_refused(signed, entry) -> None:
    key, index, keys = signed
    doc = json.loads(index.read_text())
    doc["releases"][0].update(entry)
    text = json.dumps(doc).encode()
    with pytest.raises(UpdateRefused) as info:
        parse_index(text, key.sign(text), keys)
    assert info.value.code == "update.format"


def test_rollout_share_is_stable_and_grows_monotonically(signed) -> None:
    _, index, keys = signed
    (release,) = parse_index(index.read_bytes(), index.with_suffix(".json.sig").read_bytes(), keys)
    boxes = [f"box-{i:04d}" for i in range(2000)]
    points = [rollout_point(b, release.version) for b in boxes]
    assert points == [rollout_point(b, release.version) for b in boxes]  # stable
    assert all(0 <= p < 100 for p in points)
    at = {share: {b for b in boxes if in_rollout(b, release.__class__(**{**release.__dict__, "rollout": share}))}
          for share in (0, 5, 30, 100)}  # fmt: skip
    assert at[0] == set() and at[100] == set(boxes)
    assert at[5] <= at[30] <= at[100]  # raising the share only adds boxes
    assert 0.2 < len(at[30]) / len(boxes) < 0.4  # and the share is roughly what was asked
    assert 0.02 < len(at[5]) / len(boxes) < 0.08
    # A different release picks a different first few.
    other = {b for b in boxes if rollout_point(b, Version.parse("2026.12.3")) < 5}
    assert other != at[5]


def test_newest_for_picks_newest_of_this_arch_in_rollout(signed) -> None:
    _, index, keys = signed
    (r,) = parse_index(index.read_bytes(), index.with_suffix(".json.sig").read_bytes(), keys)
    newer = r.__class__(**{**r.__dict__, "version": Version.parse("2026.12.10"), "rollout": 100})
    held = r.__class__(**{**r.__dict__, "version": Version.parse("2027.1.1"), "rollout": 0})
    arm = r.__class__(**{**r.__dict__, "version": Version.parse("2027.2.1"), "arch": "arm64", "rollout": 100})
    assert newest_for([r, newer, held, arm], "amd64", "box-1") == newer
    assert newest_for([held], "amd64", "box-1") is None
    assert newest_for([r, newer, held, arm], "arm64", "box-1") == arm


def _at(local: str) -> float:
    return dt.datetime.fromisoformat(local).replace(tzinfo=zone("Asia/Tokyo")).timestamp()


@pytest.mark.parametrize(
    ("spec", "local", "inside"),
    [
        ("02:00-04:00", "2026-12-07T02:00", True),
        ("02:00-04:00", "2026-12-07T03:59", True),
        ("02:00-04:00", "2026-12-07T04:00", False),
        ("02:00-04:00", "2026-12-07T01:59", False),
        ("23:30-01:00", "2026-12-31T23:45", True),  # across midnight, and across the year
        ("23:30-01:00", "2027-01-01T00:30", True),
        ("23:30-01:00", "2027-01-01T01:00", False),
        ("23:30-01:00", "2026-12-31T12:00", False),
    ],
)
def test_quiet_hours_in_clinic_time(spec: str, local: str, inside: bool) -> None:
    assert in_quiet_hours(spec, _at(local), "Asia/Tokyo") is inside


def test_next_quiet_start_is_tonight_or_tomorrow() -> None:
    assert next_quiet_start("02:00-04:00", _at("2026-12-07T15:00"), "Asia/Tokyo") == _at("2026-12-08T02:00")
    assert next_quiet_start("02:00-04:00", _at("2026-12-07T01:00"), "Asia/Tokyo") == _at("2026-12-07T02:00")
    assert next_quiet_start("02:00-04:00", _at("2026-12-07T02:00"), "Asia/Tokyo") == _at("2026-12-08T02:00")
    # 02:00 JST is 17:00 UTC of the previous day: the request names UTC.
    start = next_quiet_start("02:00-04:00", wall(), "Asia/Tokyo")
    assert 0 < start - wall() <= 86400
    assert dt.datetime.fromtimestamp(start, dt.UTC).strftime("%H:%M") == "17:00"


def test_config_section() -> None:
    cfg = UpdateConfig.model_validate({"source": "https://updates.example.jp/mamori", "auto": "install"})
    assert cfg.source == "https://updates.example.jp/mamori/" and cfg.quiet_hours == "02:00-04:00"
    for bad in (
        {"source": "http://updates.example.jp/"},
        {"source": "https://user:pw@updates.example.jp/"},
        {"quiet_hours": "2-4"},
        {"quiet_hours": "02:00-02:00"},
        {"auto": "always"},
        {"ca_file": "ca.pem"},
    ):
        with pytest.raises(ValidationError):
            UpdateConfig.model_validate(bad)


def test_publish_writes_an_index_the_box_accepts(tmp_path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from update.publish import main

    key = make_key(tmp_path / "keys")
    pem = tmp_path / "vendor.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    site = tmp_path / "site"
    make_bundle(site / "mamori-2026.12.2-amd64.tar", key, "2026.12.2", notes="修正を含みます。")
    make_bundle(site / "mamori-2026.12.3-amd64.tar", key, "2026.12.3", released="2026-12-20")
    assert main([str(site), "--key", str(pem), "--rollout", "10", "--rollout-for", "2026.12.2=100"]) == 0
    releases = parse_index((site / "index.json").read_bytes(), (site / "index.json.sig").read_bytes(),
                           load_keys(tmp_path / "keys"))  # fmt: skip
    assert [(str(r.version), r.rollout, r.notes_ja, r.released) for r in releases] == [
        ("2026.12.2", 100, "修正を含みます。", ""), ("2026.12.3", 10, "セキュリティの修正を含みます。", "2026-12-20")]  # fmt: skip
    # A bundle the box would refuse is never named: publishing fails, the old index stays.
    make_bundle(site / "mamori-2026.12.4-amd64.tar", key, "2026.12.4", tamper=True)
    before = (site / "index.json").read_bytes()
    assert main([str(site), "--key", str(pem)]) == 1
    assert (site / "index.json").read_bytes() == before
