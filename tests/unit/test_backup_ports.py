"""The pure part of restoring onto other hardware: which ports a config names, the mapping, the rewritten text.

Table-driven: valid and refused mappings side by side. The config is the real example (comments and all)
plus a VLAN, so the rewritten text is checked against what a clinic's file really looks like.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.backup import ports
from appliance.backup.errors import BackupError
from appliance.backup.ports import PortMapError, PortMismatchError
from appliance.config import parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
# The example's commented-out VLAN, made real; and the IDS listening on the VLAN by name.
WITH_VLAN = EXAMPLE.replace(
    "  # - {name: lan0.40, parent: lan0, vlan: 40, zone: mgmt, address: 192.168.40.1/24}",
    "  - {name: lan0.40, parent: lan0, vlan: 40, zone: mgmt, address: 192.168.40.1/24}",
).replace("interfaces: [wan0, lan0]", "interfaces: [wan0, lan0, lan0.40]")
PI = ("wan0", "lan0", "guest0", "dev0")
MINI_PC = ("enp1s0", "enp2s0", "enp3s0", "enp4s0")
FULL = "wan0=enp1s0,lan0=enp2s0,guest0=enp3s0,dev0=enp4s0"


def test_the_example_names_its_four_ports_and_a_vlan_parent_once() -> None:
    assert ports.config_ports(parse_config(EXAMPLE).model) == list(PI)
    assert ports.config_ports(parse_config(WITH_VLAN).model) == list(PI)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("wan0=enp1s0", {"wan0": "enp1s0"}),
        (" wan0 = enp1s0 , lan0=enp2s0,", {"wan0": "enp1s0", "lan0": "enp2s0"}),
        ("", {}),
    ],
)
def test_parse_mapping(spec: str, expected: dict[str, str]) -> None:
    assert ports.parse_mapping(spec) == expected


@pytest.mark.parametrize("spec", ["wan0", "wan0=", "=enp1s0", "wan0=a,wan0=b"])
def test_parse_mapping_refuses(spec: str) -> None:
    with pytest.raises(PortMapError):
        ports.parse_mapping(spec)


@pytest.mark.parametrize(
    ("present", "mapping", "expected"),
    [
        (PI, "", dict(zip(PI, PI, strict=True))),  # the same box model: nothing to map
        ((*PI, "eth9"), "", dict(zip(PI, PI, strict=True))),  # a spare port more is fine
        (MINI_PC, FULL, dict(zip(PI, MINI_PC, strict=True))),
        (
            PI,
            "wan0=lan0,lan0=wan0,guest0=guest0",
            {"wan0": "lan0", "lan0": "wan0", "guest0": "guest0", "dev0": "dev0"},
        ),  # cables swapped
        (
            ("wan0", "lan0", "guest0", "enp4s0"),
            "dev0=enp4s0",
            {"wan0": "wan0", "lan0": "lan0", "guest0": "guest0", "dev0": "enp4s0"},
        ),
    ],
)
def test_check_mapping_accepts(present: tuple[str, ...], mapping: str, expected: dict[str, str]) -> None:
    assert ports.check_mapping(PI, present, ports.parse_mapping(mapping)) == expected


@pytest.mark.parametrize(
    ("present", "mapping", "error", "words"),
    [
        (MINI_PC, "", PortMismatchError, ["wan0, lan0, guest0, dev0", "enp1s0, enp2s0, enp3s0, enp4s0", "--ports"]),
        (MINI_PC, "wan0=enp1s0,lan0=enp2s0,guest0=enp3s0", PortMismatchError, ["dev0", "ありません"]),
        (MINI_PC, "wan0=enp1s0,lan0=enp2s0,guest0=enp3s0,dev0=enp9s0", PortMapError, ["enp9s0", "ないポート"]),
        (MINI_PC, "wan0=enp1s0,lan0=enp1s0,guest0=enp3s0,dev0=enp4s0", PortMapError, ["同じポート enp1s0"]),
        (MINI_PC, FULL + ",eth1=enp2s0", PortMapError, ["eth1", "設定にないポート"]),
        (PI, "wan0=lan0", PortMapError, ["wan0 と lan0", "同じポート lan0"]),  # onto a port still in use
    ],
)  # fmt: skip
def test_check_mapping_refuses(present: tuple[str, ...], mapping: str, error: type, words: list[str]) -> None:
    with pytest.raises(error) as caught:
        ports.check_mapping(PI, present, ports.parse_mapping(mapping))
    assert all(w in caught.value.text("ja") for w in words), caught.value.text("ja")
    assert "not changed" in caught.value.text("en")


def test_the_refusal_suggests_a_mapping_in_the_command_syntax() -> None:
    with pytest.raises(PortMismatchError) as caught:
        ports.check_mapping(PI, MINI_PC, {})
    assert f"--ports {FULL}" in caught.value.text("ja")
    assert f"--ports {FULL}" in caught.value.text("en")
    assert caught.value.missing == list(PI) and caught.value.present == list(MINI_PC)


def test_plan_on_the_same_ports_changes_nothing() -> None:
    plan = ports.plan(EXAMPLE, PI)
    assert not plan.changed and plan.text == EXAMPLE


def test_plan_renames_every_interface_reference_and_keeps_the_rest_of_the_text() -> None:
    plan = ports.plan(WITH_VLAN, MINI_PC, ports.parse_mapping(FULL))
    assert plan.summary() == "wan0→enp1s0, lan0→enp2s0, guest0→enp3s0, dev0→enp4s0, lan0.40→enp2s0.40"
    cfg = parse_config(plan.text).model
    assert [(i.name, i.parent) for i in cfg.interfaces] == [
        ("enp1s0", None), ("enp2s0", None), ("enp3s0", None), ("enp4s0", None), ("enp2s0.40", "enp2s0"),
    ]  # fmt: skip
    assert cfg.ids.interfaces == ["enp1s0", "enp2s0", "enp2s0.40"]
    assert cfg.vpn.interface == "mamori-wg"  # Mamori's own WireGuard interface is not a port
    # Only the names changed: comments, zones, addresses, every other line as it was.
    old, new = WITH_VLAN.splitlines(), plan.text.splitlines()
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert len(changed) == 6
    assert ("  - name: wan0", "  - name: enp1s0") in changed
    assert "# ポートとゾーン" in plan.text and "電子カルテ" in plan.text


@pytest.mark.parametrize(
    ("line", "renamed"),
    [
        ("  - name: 'wan0'", "  - name: 'enp1s0'"),
        ('  - name: "wan0"', '  - name: "enp1s0"'),
    ],
)
def test_quoted_names_keep_their_quotes(line: str, renamed: str) -> None:
    text = EXAMPLE.replace("  - name: wan0", line)
    plan = ports.plan(text, MINI_PC, ports.parse_mapping(FULL))
    assert renamed in plan.text.splitlines()


def test_a_mapped_config_that_does_not_load_is_refused() -> None:
    # A VLAN whose own name is the new port's name: two interfaces called enp2s0 after the mapping.
    text = WITH_VLAN.replace("name: lan0.40", "name: enp2s0").replace("lan0, lan0.40]", "lan0, enp2s0]")
    with pytest.raises(BackupError) as caught:
        ports.plan(text, MINI_PC, ports.parse_mapping(FULL))
    assert caught.value.code == "backup.port_map" and "2回定義" in caught.value.text("ja")


def test_an_alias_the_rename_cannot_reach_is_refused_not_half_mapped() -> None:
    text = EXAMPLE.replace("  - name: wan0", "  - name: &up wan0").replace(
        "interfaces: [wan0, lan0]", "interfaces: [*up, lan0]"
    )
    with pytest.raises(BackupError) as caught:
        ports.plan(text, MINI_PC, ports.parse_mapping(FULL))
    assert caught.value.code == "backup.port_map"


def test_detect_ports_sees_the_loopback_never() -> None:
    assert "lo" not in ports.detect_ports()
