"""The renderer: golden output for the example clinic, and table-driven cases of what each setting opens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from firewall.render import VPN_INTERFACE, render_ruleset, vpn_set_name
from tests.unit.test_firewall_helpers import chain_rules, chains, config, sets
from tests.unit.test_ssh_render import KEY_ED25519

GOLDEN = Path(__file__).parent / "golden" / "firewall_clinic.json"
SSH_ON = {"ssh": {"enabled": True, "authorized_keys": [KEY_ED25519]}}


def test_golden_example_clinic() -> None:
    """Reviewed like code: any change to the rendering shows up as a diff of this file."""
    rendered = json.dumps(render_ruleset(config()), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if os.environ.get("MAMORI_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert rendered == GOLDEN.read_text(encoding="utf-8")


def test_batch_replaces_only_our_table() -> None:
    cmds = render_ruleset(config())["nftables"]
    head = [next(iter(c)) for c in cmds[:3]]
    assert head == ["add", "delete", "add"]
    assert all(next(iter(c.values()))[k]["table" if k != "table" else "name"] == "mamori"
               for c in cmds for k in next(iter(c.values())))  # fmt: skip
    assert all(next(iter(next(iter(c.values())).values()))["family"] == "inet" for c in cmds)


def test_render_is_pure_and_deterministic() -> None:
    assert render_ruleset(config()) == render_ruleset(config())


@pytest.mark.parametrize(
    ("changes", "chain", "needle", "present"),
    [
        # wan: only the WireGuard port, and only when the VPN is on
        ({}, "in_wan", '"right": 51820', True),
        ({"vpn": {"enabled": False}}, "in_wan", "51820", False),
        ({"vpn": {"listen_port": 41000}}, "in_wan", '"right": 41000', True),
        # web UI: only from web.zones, never from guest or wan even if a raw model says so
        ({}, "in_lan", "443", True),
        ({}, "in_guest", "443", False),
        ({"web": {"port": 8444}}, "in_lan", "8444", True),
        ({"web": {"zones": ["guest", "wan"]}}, "in_guest", "443", False),
        ({"web": {"zones": ["guest", "wan"]}}, "in_wan", "443", False),
        # guest may ask the box for DHCP and DNS only
        ({}, "in_guest", "67", True),
        ({}, "in_guest", "123", False),
        ({}, "in_guest", "echo-request", False),
        ({}, "in_devices", "123", True),
        # lan -> internet: allowed but the ransomware ports are not
        ({}, "fwd_lan_wan", "445", True),
        ({"firewall": {"blocked_outbound": []}}, "fwd_lan_wan", "blocked-outbound", False),
        ({"firewall": {"blocked_outbound": ["tcp/8080"]}}, "fwd_lan_wan", "8080", True),
        # devices reach only what rules allow: the X-ray device to PACS on DICOM
        ({}, "fwd_devices_lan", '"192.168.30.40"', True),
        ({}, "fwd_devices_lan", "104", True),
        ({}, "fwd_devices_wan", "accept", False),
        ({"firewall": {"rules": []}}, "fwd_devices_lan", "accept", False),
        # a rule naming something unknown (only possible unchecked) opens nothing
        (
            {"firewall": {"rules": [{"src": "devices", "dst": "誰か", "service": "SMB"}]}},
            "fwd_devices_lan",
            "accept",
            False,
        ),
        # rules with a schedule carry meta day / meta hour in UTC seconds
        (
            {
                "firewall": {
                    "rules": [{"src": "受付PC", "dst": "wan", "service": "HTTPS", "schedule": "診療時間"}]
                }
            },
            "fwd_lan_wan",
            '"hour"',
            True,
        ),
        # guest closed outside its schedule
        ({"firewall": {"zone_schedules": {"guest": "診療時間"}}}, "fwd_guest_wan", "sched_guest", True),
        ({}, "fwd_guest_wan", "sched_guest", False),
        # port forwards only when configured
        ({}, "prerouting", "dnat", False),
        (
            {"firewall": {"port_forwards": [{"port": "tcp/8080", "to_host": "電子カルテ", "to_port": 443}]}},
            "prerouting",
            "dnat",
            True,
        ),
        (
            {"firewall": {"port_forwards": [{"port": "tcp/8080", "to_host": "電子カルテ", "to_port": 443}]}},
            "fwd_wan_lan",
            '"dnat"',
            True,
        ),
        # masquerade on the wan interface
        ({}, "postrouting", '"masquerade"', True),
        # drop log can be switched off, drops are still counted
        ({"firewall": {"log_drops": False}}, "d_lan_wan_blocked-outbound", '"log"', False),
        ({}, "d_lan_wan_blocked-outbound", '"group": 7', True),
        # VPN: each user reaches only their own access list, from their own set
        ({}, "fwd_vpn_lan", f"@{vpn_set_name('yamada')}", True),
        ({}, "fwd_vpn_wan", "accept", False),
        ({}, "in_vpn", "8443", True),
        # refused tunnel connections are logged for the VPN connection log (group 8), even with log_drops off
        ({}, "fwd_vpn_lan", '"group": 8', True),
        ({"firewall": {"log_drops": False}}, "fwd_vpn_lan", '"prefix": "mamori vpn refused vpn>lan: "', True),
        ({}, "fwd_lan_wan", '"group": 8', False),
        ({"vpn": {"enabled": False}}, "fwd_lan_lan", '"group": 8', False),
    ],
)
def test_policy_cells(changes: dict, chain: str, needle: str, present: bool) -> None:
    # Replies (ct established/related) pass everywhere; the cells are about new connections.
    text = "\n".join(
        r for r in chain_rules(render_ruleset(config(**changes)), chain) if "established" not in r
    )
    assert (needle in text) is present, text


def test_sets_and_their_flags() -> None:
    cfg = config(firewall={"allowlist": ["198.51.100.0/24", "2001:db8::/32"]})
    s = sets(render_ruleset(cfg))
    assert s["blocked4"]["flags"] == ["timeout"] and s["quarantine4"]["flags"] == ["timeout"]
    assert s["feed4"]["flags"] == ["interval"] and s["feed6"]["type"] == "ipv6_addr"
    assert s["allow4"]["elem"] == [{"prefix": {"addr": "198.51.100.0", "len": 24}}]
    assert s["allow6"]["elem"] == [{"prefix": {"addr": "2001:db8::", "len": 32}}]
    assert {vpn_set_name("yamada"), vpn_set_name("vendor-a")} <= set(s)


def test_vpn_set_names_are_stable_ascii() -> None:
    assert vpn_set_name("山田") == vpn_set_name("山田")
    assert vpn_set_name("山田").isascii() and len(vpn_set_name("山田")) == 17
    assert vpn_set_name("a") != vpn_set_name("b")


def test_vpn_interface_is_configurable_and_static_peers_seeded() -> None:
    batch = render_ruleset(config(), {"yamada": ["10.99.0.2"]}, vpn_interface="wgtest1")
    text = json.dumps(batch)
    assert '"wgtest1"' in text and VPN_INTERFACE not in text
    assert sets(batch)[vpn_set_name("yamada")]["elem"] == ["10.99.0.2"]


def test_disabled_vpn_user_gets_no_access() -> None:
    data_users = [{"name": "yamada", "role": "doctor", "enabled": False,
                   "access": [{"dst": "電子カルテ", "service": "HTTPS"}]}]  # fmt: skip
    cfg = config(vpn={"users": data_users})
    assert not any(
        "accept" in r and "established" not in r for r in chain_rules(render_ruleset(cfg), "fwd_vpn_lan")
    )


def test_no_vpn_chains_when_vpn_off() -> None:
    names = chains(render_ruleset(config(vpn={"enabled": False})))
    assert not any("vpn" in n for n in names)


def test_checks_are_sets_not_chains_of_addresses() -> None:
    """Per-packet cost must not grow with the number of blocked addresses: lookups in named sets."""
    guard = "\n".join(chain_rules(render_ruleset(config()), "guard"))
    assert "@blocked4" in guard and "@allow4" in guard
    assert guard.index("@allow4") < guard.index("@blocked4")  # allowlist first


def _tcp_ports(batch: dict, chain: str) -> set[int]:
    """Every tcp destination port a chain accepts (single ports and sets), from the rules' JSON."""
    ports: set[int] = set()
    for rule in chain_rules(batch, chain):
        for expr in json.loads(rule):
            m = expr.get("match", {}) if isinstance(expr, dict) else {}
            if m.get("left") == {"payload": {"field": "dport", "protocol": "tcp"}}:
                right = m["right"]
                ports.update(right["set"] if isinstance(right, dict) else [right])
    return ports


@pytest.mark.parametrize(
    ("changes", "open_in"),
    [
        ({}, set()),
        (SSH_ON, {"in_lan", "in_mgmt"}),
        ({"ssh": {"enabled": False, "authorized_keys": [KEY_ED25519]}}, set()),
    ],
)
def test_ssh_only_from_lan_and_mgmt_and_only_when_enabled(changes: dict, open_in: set[str]) -> None:
    mgmt = {"name": "lan0.40", "parent": "lan0", "vlan": 40, "zone": "mgmt", "address": "192.168.40.1/24"}
    batch = render_ruleset(config(**changes, interfaces=[*config().model_dump()["interfaces"], mgmt]))
    zones = ["in_wan", "in_lan", "in_guest", "in_devices", "in_mgmt", "in_quarantine"]
    assert {z for z in zones if 22 in _tcp_ports(batch, z)} == open_in
    assert 443 in _tcp_ports(batch, "in_lan")  # the helper does see ports
