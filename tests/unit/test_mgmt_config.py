"""The `mgmt:` section and what the firewall makes of it: table-driven, valid and invalid side by side.

The promise under test: the vendor hub's link reaches the box's own listed services on the box's tunnel
address and nothing else, and no config can open a clinic zone to it (the forward drop is rendered first,
whether or not the link is on, and validation refuses a rule that names the link)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import ConfigError
from firewall.render import render_ruleset
from mgmt.render import render_link
from tests.unit.test_firewall_helpers import chain_rules, chains, example_dict

HUB_KEY = base64.b64encode(bytes(range(32))).decode()
LINK = {
    "enabled": True,
    "hub_endpoint": "hub.example.jp:51820",
    "hub_public_key": HUB_KEY,
    "network": "10.77.0.0/16",
    "address": "10.77.0.17",
    "hub_addresses": ["10.77.0.1"],
}
RELAY = "hub.example.jp:40017"
RELAY_AUTO = {"path": "auto", "relay_endpoint": RELAY}
PROBE = {f: base64.b64encode(bytes([i + 1]) * 32).decode() for i, f in enumerate(("ipv4", "ipv6", "link"))}
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl vendor"


def text(mgmt: dict[str, Any] | None = None, **sections: Any) -> str:
    data = copy.deepcopy(example_dict())
    if mgmt is not None:
        data["mgmt"] = mgmt
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def issues(mgmt: dict[str, Any] | None = None, **sections: Any) -> dict[str, str]:
    try:
        parse_config(text(mgmt, **sections))
    except ConfigError as exc:
        return {i.path: i.message.ja for i in exc.issues}
    return {}


def test_off_by_default_and_nothing_rendered_for_the_link() -> None:
    cfg = parse_config(text()).model
    assert cfg.mgmt.enabled is False
    assert render_link(cfg).enabled is False
    assert "in_mgmt-link" not in chains(render_ruleset(cfg))


@pytest.mark.parametrize(
    ("change", "path", "needle"),
    [
        ({}, None, None),
        ({"hub_endpoint": "[2001:db8::5]:51820"}, None, None),
        ({"hub_endpoint": "203.0.113.9:51820"}, None, None),
        ({"hub_endpoint": "hub.example.jp"}, "mgmt.hub_endpoint", "ホスト名:ポート"),
        ({"hub_endpoint": "2001:db8::5:51820"}, "mgmt.hub_endpoint", "ホスト名:ポート"),
        ({"hub_endpoint": "hub.example.jp:70000"}, "mgmt.hub_endpoint", "ホスト名:ポート"),
        ({"hub_public_key": "not-a-key"}, "mgmt.hub_public_key", "公開鍵の形式"),
        ({"hub_public_key": ""}, "mgmt", "hub_public_key"),
        ({"hub_addresses": []}, "mgmt", "hub_addresses"),
        ({"address": "10.78.0.17"}, "mgmt", "保守業者のネットワーク"),
        ({"hub_addresses": ["10.99.0.1"]}, "mgmt", "保守業者のネットワーク"),
        ({"hub_addresses": ["10.77.0.17"]}, "mgmt", "同じ"),
        ({"keepalive": 5}, "mgmt.keepalive", "10 以上"),
        # the hub network may not overlap any clinic network: lan, the VPN pool, wan
        ({"network": "192.168.0.0/16", "address": "192.168.200.2", "hub_addresses": ["192.168.200.1"]},
         "mgmt.network", "重なっています"),
        ({"network": "10.99.0.0/16", "address": "10.99.200.2", "hub_addresses": ["10.99.200.1"]},
         "mgmt.network", "重なっています"),
        ({"network": "203.0.113.0/24", "address": "203.0.113.200", "hub_addresses": ["203.0.113.201"]},
         "mgmt.network", "重なっています"),
        ({"interface": "lan0"}, "mgmt.interface", "既に使われています"),
        ({"interface": "mamori-wg"}, "mgmt.interface", "既に使われています"),
    ],
)  # fmt: skip
def test_validation(change: dict, path: str | None, needle: str | None) -> None:
    found = issues({**LINK, **change})
    if path is None:
        assert found == {}
    else:
        assert path in found, found
        assert needle in found[path], found


@pytest.mark.parametrize("name", ["mgmt-link", "mamori-mgmt"])
@pytest.mark.parametrize("end", ["src", "dst"])
def test_no_firewall_rule_or_vpn_access_can_name_the_link(name: str, end: str) -> None:
    rule = {"src": "lan", "dst": "lan", end: name}
    found = issues(LINK, firewall={"rules": [rule]})
    assert "管理接続" in found["firewall.rules[0]." + end], found
    users = [{"name": "v", "role": "vendor", "access": [{"dst": name}]}]
    found = issues(LINK, vpn={"users": users})
    assert "管理接続" in found["vpn.users[0].access[0].dst"], found


def test_plan_has_one_peer_with_the_hub_addresses_only() -> None:
    plan = render_link(parse_config(text({**LINK, "hub_addresses": ["10.77.0.1", "10.77.0.2"]})).model)
    assert plan.enabled and plan.ifname == "mamori-mgmt" and plan.address == "10.77.0.17/32"
    assert plan.hub_allowed_ips == ("10.77.0.1/32", "10.77.0.2/32") == plan.routes()
    assert plan.keepalive == 25 and plan.hub_endpoint == "hub.example.jp:51820"
    v6 = {**LINK, "network": "fd77::/64", "address": "fd77::17", "hub_addresses": ["fd77::1"]}
    plan6 = render_link(parse_config(text(v6)).model)
    assert plan6.address == "fd77::17/128" and plan6.hub_allowed_ips == ("fd77::1/128",)


def _batch(mgmt: dict | None = LINK, **sections: Any) -> dict:
    return render_ruleset(parse_config(text(mgmt, **sections)).model)


def _forward_head(batch: dict) -> list[str]:
    return chain_rules(batch, "forward")[:2]


@pytest.mark.parametrize(
    ("mgmt", "sections"),
    [
        (None, {}),  # the link off: the drop is there all the same
        (LINK, {}),
        ({**LINK, "interface": "wgvendor"}, {}),
        # a rule opening everything between every zone, an allowlist, a port forward: the link stays shut
        (LINK, {"firewall": {"rules": [{"src": z, "dst": d} for z in ("lan", "wan", "vpn", "devices")
                                       for d in ("lan", "wan", "devices")],
                             "allowlist": ["10.77.0.0/16", "0.0.0.0/0"],
                             "port_forwards": [{"port": "tcp/3389", "to_host": "受付PC"}]}}),
    ],
)  # fmt: skip
def test_forward_from_and_to_the_link_is_dropped_first_whatever_the_config(
    mgmt: dict | None, sections: dict
) -> None:
    batch = _batch(mgmt, **sections)
    ifname = (mgmt or {}).get("interface", "mamori-mgmt")
    head = _forward_head(batch)
    assert [json.loads(r) for r in head] == [
        [{"match": {"left": {"meta": {"key": key}}, "op": "==", "right": ifname}},
         {"jump": {"target": "d_mgmt-link_any_never"}}]
        for key in ("iifname", "oifname")
    ]  # fmt: skip
    never = chain_rules(batch, "d_mgmt-link_any_never")
    assert "drop" in never[-1] and "accept" not in " ".join(never)
    # and no forward pair chain is ever made for the link
    assert not [c for c in chains(batch) if c.startswith("fwd_") and "mgmt-link" in c]


@pytest.mark.parametrize(
    ("sections", "open_ports", "closed_ports"),
    [
        # the VPN port (51820, UDP) only while the hub relays doctors (path relay/auto with relay_endpoint) or
        # probes the link (vpn.probe), and the VPN is on; a plain VPN box keeps it closed on the link
        ({}, {"443"}, {"22", "80", "53", "67", "123", "9469", "51820"}),
        ({"vpn": RELAY_AUTO}, {"443", "51820"}, {"22", "80", "53", "67", "123", "9469"}),
        ({"vpn": {"path": "relay", "relay_endpoint": RELAY}}, {"443", "51820"}, {"22"}),
        ({"vpn": {"relay_endpoint": RELAY}}, {"443"}, {"51820"}),  # path direct: no config uses the relay
        (
            {"vpn": {"path": "ipv6", "endpoint6": "clinic.example.jp", "relay_endpoint": RELAY}},
            {"443"},
            {"51820"},
        ),
        ({"vpn": {"probe": PROBE}}, {"443", "51820"}, {"22"}),  # the hub's link probe, no relay
        ({"vpn": {**RELAY_AUTO, "probe": PROBE, "enabled": False}}, {"443"}, {"51820"}),
        ({"vpn": {**RELAY_AUTO, "listen_port": 41000}}, {"443", "41000"}, {"51820"}),
        ({"web": {"port": 8444}}, {"8444"}, {"443", "51820"}),
        ({"ssh": {"enabled": True, "authorized_keys": [SSH_KEY]}}, {"443", "22"}, {"80", "51820"}),
        ({"metrics": {"listen": ["10.77.0.17:9469"]}}, {"443", "9469"}, {"22", "51820"}),
        # metrics on the lan address only: not opened on the link
        ({"metrics": {"listen": ["192.168.10.1:9469"]}}, {"443"}, {"9469"}),
    ],
)
def test_link_input_opens_only_the_listed_box_services_on_the_link_address(
    sections: dict, open_ports: set[str], closed_ports: set[str]
) -> None:
    batch = _batch(LINK, **sections)
    rules = chain_rules(batch, "in_mgmt-link")
    accepts = [r for r in rules if '"accept"' in r and "established" not in r]
    # every accept is bound to the box's tunnel address
    assert accepts and all('"10.77.0.17"' in r for r in accepts), accepts
    ports = set()
    for r in accepts:
        for expr in json.loads(r):
            right = expr.get("match", {}).get("right")
            if expr.get("match", {}).get("left", {}).get("payload", {}).get("field") == "dport":
                ports.update(str(p) for p in (right.get("set") if isinstance(right, dict) else [right]))
    assert ports == open_ports
    assert not ports & closed_ports
    udp = [r for r in accepts if '"udp"' in r]  # the relayed VPN port is the only UDP one
    assert len(udp) == (1 if "51820" in open_ports or "41000" in open_ports else 0), udp
    assert "d_mgmt-link_box_policy" in rules[-1]
    dispatch = next(r for r in chain_rules(batch, "input") if "vmap" in r)
    assert '"mamori-mgmt"' in dispatch and '"in_mgmt-link"' in dispatch


def test_no_wan_rule_is_added_for_the_link() -> None:
    """The box dials out: enabling the link changes no wan chain, no nat and no prerouting rule."""
    off, on = _batch(None), _batch(LINK)
    for chain in ("in_wan", "prerouting", "postrouting", "guard"):
        assert chain_rules(off, chain) == chain_rules(on, chain), chain
    assert {c for c in chains(on)} - {c for c in chains(off)} == {"in_mgmt-link", "d_mgmt-link_box_policy"}


def test_metrics_may_listen_on_the_link_address_only_while_the_link_is_on() -> None:
    assert issues(LINK, metrics={"listen": ["10.77.0.17:9469"]}) == {}
    off = {**LINK, "enabled": False}
    assert "metrics.listen[0]" in issues(off, metrics={"listen": ["10.77.0.17:9469"]})


@pytest.mark.parametrize(
    "path", [("mgmt",), ("mgmt", "enabled"), ("mgmt", "hub_public_key"), ("mgmt", "interface")]
)
def test_only_the_administrator_may_change_the_link(path: tuple[str, ...]) -> None:
    from appliance.config import authority as auth

    assert auth.required_permission(path) == auth.MGMT_MANAGE
    assert auth.MGMT_MANAGE in auth.permissions_for("admin")
    assert auth.MGMT_MANAGE not in auth.permissions_for("vendor", auth.GRANTABLE_AREAS)
    assert auth.MGMT_MANAGE not in auth.permissions_for("vendor", ("mgmt", "mgmt.manage", "settings"))
    old, new = parse_config(text()).model, parse_config(text(LINK)).model
    vendor = auth.permissions_for("vendor", auth.GRANTABLE_AREAS)
    with pytest.raises(auth.ConfigRefused) as refused:
        auth.check(old, new, vendor)
    assert "保守業者の管理接続（mgmt）" in refused.value.text("ja")
    auth.check(old, new, auth.permissions_for("admin"))


def test_cut_switches_the_link_off_and_drops_metrics_listeners_on_its_address() -> None:
    """A cut must apply where the vendor's Prometheus scrapes the box over the link: the link address goes,
    so do the listeners on it (a config naming it would be refused); the LAN listener stays."""
    from mgmt.actions import cut_text

    before = text(LINK, metrics={"listen": ["10.77.0.17:9469", "192.168.10.1:9469"]})
    after = parse_config(cut_text(before)).model
    assert after.mgmt.enabled is False and after.mgmt.hub_endpoint == LINK["hub_endpoint"]
    assert after.metrics.listen == ["192.168.10.1:9469"]
    only_link = parse_config(cut_text(text(LINK, metrics={"listen": ["10.77.0.17:9469"]}))).model
    assert only_link.metrics.listen == [] and only_link.mgmt.enabled is False


def test_cut_switches_off_syslog_sent_through_the_link(tmp_path) -> None:
    """siem.via: mgmt needs the link: a cut switches that syslog off (else the cut's config is refused);
    syslog sent through wan is not the link's and stays on."""
    from lab.syslog_collector import make_pki
    from mgmt.actions import cut_text

    ca = make_pki(tmp_path / "pki", names=["hub.example.jp"]).ca_cert.read_text()
    siem = {"enabled": True, "collector": "10.77.0.1", "collector_ca": ca, "via": "mgmt"}
    after = parse_config(cut_text(text(LINK, siem=siem))).model
    assert after.mgmt.enabled is False and after.siem.enabled is False and after.siem.collector == "10.77.0.1"
    wan = {"enabled": True, "collector": "siem.example.jp", "collector_ca": ca}
    assert parse_config(cut_text(text(LINK, siem=wan))).model.siem.enabled is True
