"""Suricata configuration rendered from the Mamori config: table-driven, valid and invalid side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.config.load import load_config, parse_config
from appliance.errors import ConfigError
from ids.render import NEVER, SuricataPaths, address_groups, render, threshold_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "examples" / "clinic.yaml").read_text()
RUN = Path("/var/lib/mamori/run")


def cfg_with(ids_yaml: str | None = None, drop_devices: bool = False):
    text = EXAMPLE
    if ids_yaml is not None:
        start = text.index("\nids:\n")
        end = text.index("\nvpn:\n")
        text = text[:start] + "\nids:\n" + ids_yaml + text[end:]
    if drop_devices:
        text = text.replace("  - name: dev0\n    zone: devices\n    address: 192.168.30.1/24\n", "")
        text = text.replace(
            "  - {name: X線装置, ip: 192.168.30.40, description: 一般撮影装置（更新できない古い機器）}\n", ""
        )
        text = text.replace(
            "    - {src: X線装置, dst: PACS, service: DICOM, comment: レントゲン画像の送信}\n", ""
        )
    return parse_config(text).model


def doc(cfg) -> dict:
    text = render(cfg, RUN, Path("/c"), Path("/r")).yaml_text
    assert text.startswith("%YAML 1.1\n---\n")
    return yaml.safe_load(text.split("---\n", 1)[1])


def test_example_renders_capture_home_net_eve_and_socket() -> None:
    d = doc(load_config(REPO / "examples" / "clinic.yaml").model)
    assert [e["interface"] for e in d["af-packet"]] == ["wan0", "lan0", "default"]
    groups = d["vars"]["address-groups"]
    assert groups["HOME_NET"] == (
        "[192.168.10.0/24,192.168.20.0/24,192.168.30.0/24,10.99.0.0/24,fd4d:616d:6f72::/64,203.0.113.2/32]"
    )
    assert groups["EXTERNAL_NET"] == "!$HOME_NET" and groups["HTTP_SERVERS"] == "$HOME_NET"
    types = [next(iter(t)) for t in d["outputs"][0]["eve-log"]["types"]]
    assert types == ["alert", "anomaly", "http", "dns", "tls", "flow", "stats"]
    paths = SuricataPaths.under(RUN)
    assert d["outputs"][0]["eve-log"]["filename"] == str(paths.eve)
    assert d["unix-command"] == {"enabled": "yes", "filename": str(paths.socket)}
    assert d["rule-files"] == ["mamori-active.rules"] and d["default-rule-path"] == str(paths.rules.parent)
    assert all(str(v).startswith(str(RUN)) for v in (d["default-log-dir"], d["threshold-file"]))


@pytest.mark.parametrize(
    ("ids_yaml", "expect"),
    [
        ("  interfaces: [wan0]\n", {"ifaces": ["wan0", "default"]}),
        ("  interfaces: []\n", {"ifaces": ["default"]}),
        ("  profile: full\n  interfaces: [lan0]\n", {"profile": "full", "ifaces": ["lan0", "default"]}),
        ("  enabled: false\n", {"enabled": False}),
        ("  disable_sids: [2009358]\n  disable_categories: [emerging-info]\n", {"disabled": (2009358,)}),
    ],
)
def test_valid_ids_sections(ids_yaml: str, expect: dict) -> None:
    cfg = cfg_with(ids_yaml)
    r = render(cfg, RUN, Path("/c"), Path("/r"))
    if "ifaces" in expect:
        assert [e["interface"] for e in doc(cfg)["af-packet"]] == expect["ifaces"]
    assert r.profile == expect.get("profile", "clinic")
    assert r.enabled is expect.get("enabled", True)
    assert r.disable_sids == expect.get("disabled", ())


@pytest.mark.parametrize(
    ("ids_yaml", "path"),
    [
        ("  profile: huge\n", "ids.profile"),
        ("  interfaces: [eth9]\n", "ids.interfaces[0]"),
        ("  suppress: [{sid: 0}]\n", "ids.suppress[0].sid"),
        ("  suppress: [{sid: 5, track: by_host, ip: 1.2.3.4}]\n", "ids.suppress[0].track"),
        ("  auto_block: {min_severity: 5}\n", "ids.auto_block.min_severity"),
        ("  incident_window: soon\n", "ids.incident_window"),
        ("  eve_max_line_kb: 1\n", "ids.eve_max_line_kb"),
        ("  color: red\n", "ids.color"),
    ],
)
def test_invalid_ids_sections(ids_yaml: str, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg_with(ids_yaml)
    assert any(i.path == path for i in err.value.issues), [i.path for i in err.value.issues]


def test_missing_zone_group_never_matches() -> None:
    groups = address_groups(cfg_with(drop_devices=True))
    assert groups["DEVICES_NET"] == f"[{NEVER}]"
    assert "192.168.30.0/24" not in groups["HOME_NET"]


@pytest.mark.parametrize(
    ("suppress", "lines"),
    [
        ("[]", []),
        ("[{sid: 2009358}]", ["suppress gen_id 1, sig_id 2009358"]),
        ("[{sid: 1990007, track: by_src, ip: 192.168.30.40}]",
         ["suppress gen_id 1, sig_id 1990007, track by_src, ip 192.168.30.40"]),
    ],
)  # fmt: skip
def test_threshold_text(suppress: str, lines: list[str]) -> None:
    text = threshold_text(cfg_with(f"  suppress: {suppress}\n"))
    assert text.splitlines()[1:] == lines


@pytest.mark.parametrize(
    ("thresholds", "lines"),
    [
        ("[{sid: 2009358}]", ["threshold gen_id 1, sig_id 2009358, type limit, track by_src, count 1, seconds 3600"]),
        ("[{sid: 1990004, type: both, track: by_dst, count: 5, seconds: 60}]",
         ["threshold gen_id 1, sig_id 1990004, type both, track by_dst, count 5, seconds 60"]),
    ],
)  # fmt: skip
def test_thresholds(thresholds: str, lines: list[str]) -> None:
    assert threshold_text(cfg_with(f"  thresholds: {thresholds}\n")).splitlines()[1:] == lines


@pytest.mark.parametrize(
    ("thresholds", "path"),
    [
        ("[{sid: 1, type: often}]", "ids.thresholds[0].type"),
        ("[{sid: 1, count: 0}]", "ids.thresholds[0].count"),
        ("[{sid: 1, seconds: 9999999}]", "ids.thresholds[0].seconds"),
        ("[{count: 3}]", "ids.thresholds[0].sid"),
    ],
)
def test_invalid_thresholds(thresholds: str, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg_with(f"  thresholds: {thresholds}\n")
    assert any(i.path == path for i in err.value.issues), [i.path for i in err.value.issues]


def test_render_is_pure_and_deterministic(tmp_path: Path) -> None:
    cfg = load_config(REPO / "examples" / "clinic.yaml").model
    a = render(cfg, tmp_path / "nowhere", Path("/c"), Path("/r"))
    b = render(cfg, tmp_path / "nowhere", Path("/c"), Path("/r"))
    assert a == b and not (tmp_path / "nowhere").exists()
