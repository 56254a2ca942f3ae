"""Doctors on every Japanese line (issue 17): the listen port as a setting (MAP-E port sets), the path a new
doctor's .conf uses (direct, IPv6, the vendor hub's relay) and what the box says about reachability."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.clock import wall
from appliance.config.load import parse_config
from appliance.errors import ConfigError, MamoriError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from mgmt.relay import parse_clinic, render_hub_rules
from vpn.lines import RELAY_MTU, Reach, choose_path
from vpn.reach import ROUND_S, record, status
from vpn.render import client_conf, render_interface, render_server
from vpn.store import Device
from vpn.wg import DumpState, PeerState

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
SERVER = "obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4="


def cfg(text: str = EXAMPLE):
    return parse_config(text).model


def dev() -> Device:
    return Device(1, "yamada", "pc1", SERVER, "10.99.0.2", "fd4d:616d:6f72::2", True, 0.0, None)


def test_listen_port_inside_a_map_e_port_set_flows_everywhere():
    c = cfg(EXAMPLE.replace("listen_port: 51820", "listen_port: 41000"))
    assert render_interface(c).listen_port == 41000
    conf = client_conf(c, dev(), SERVER)
    assert "Endpoint = 203.0.113.2:41000" in conf
    assert "# 接続経路: 直接（医院のルーターから本機の UDP 41000番へ）" in conf
    # the firewall's wan rule follows it too: tests/unit/test_firewall_render.py (41000 in in_wan)


@pytest.mark.parametrize("port", [80, 1023])
def test_a_privileged_port_is_refused_with_the_map_e_hint(port):
    with pytest.raises(ConfigError) as exc:
        parse_config(EXAMPLE.replace("listen_port: 51820", f"listen_port: {port}"))
    issues = {i.path: i for i in exc.value.issues}
    assert "MAP-E" in issues["vpn.listen_port"].message.ja and "240" in issues["vpn.listen_port"].message.ja


def test_the_listen_port_help_names_map_e():
    from vpn.model import LISTEN_PORT_HELP_JA, VpnConfig

    assert "MAP-E" in LISTEN_PORT_HELP_JA and "240" in LISTEN_PORT_HELP_JA
    assert VpnConfig.model_json_schema()["properties"]["listen_port"]["description"] == LISTEN_PORT_HELP_JA


HUB = "hub.example.jp:40017"
LINK = {"enabled": True, "hub_endpoint": "hub.example.jp:51820", "hub_public_key": SERVER,
        "network": "10.77.0.0/16", "address": "10.77.0.17", "hub_addresses": ["10.77.0.1"]}  # fmt: skip
PROBE = {"ipv4": "ZwiGMueot1xuSwtN17gJ5PvMlENvmhTTuN6Ko83hdFQ=",
         "ipv6": "3SK+Ln210t7ltGRMf+4dJX1EJO+rjBi6KOAgsEdQNBI=", "link": SERVER}  # fmt: skip


def with_vpn(mgmt: dict | None = None, **vpn) -> str:
    data = yaml.safe_load(EXAMPLE)
    data["vpn"].update(vpn)
    if mgmt is not None:
        data["mgmt"] = mgmt
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def issues(text: str) -> dict[str, str]:
    try:
        parse_config(text)
    except ConfigError as exc:
        return {i.path: i.message.ja for i in exc.issues}
    return {}


def test_relay_conf_names_the_hub_its_path_and_a_smaller_mtu():
    c = cfg(with_vpn(LINK, path="relay", relay_endpoint=HUB))
    conf = client_conf(c, dev(), SERVER)
    assert "Endpoint = hub.example.jp:40017" in conf
    assert "# 接続経路: 保守業者のハブ経由の中継" in conf and f"MTU = {RELAY_MTU}" in conf
    assert RELAY_MTU + 80 + 80 <= 1500  # the doctor's packet inside the link still fits a 1500 byte line
    assert render_interface(c).mtu == RELAY_MTU
    assert render_interface(cfg()).mtu is None  # no relay: WireGuard's default


def test_ipv6_path_uses_the_name_that_follows_the_prefix():
    c = cfg(with_vpn(path="ipv6", endpoint6="clinic-17.v6.example.jp"))
    conf = client_conf(c, dev(), SERVER)
    assert "Endpoint = clinic-17.v6.example.jp:51820" in conf and "IPv6 で直接" in conf and "MTU" not in conf
    conf = client_conf(cfg(with_vpn(path="ipv6", endpoint6="2001:db8:17::2")), dev(), SERVER)
    assert "Endpoint = [2001:db8:17::2]:51820" in conf


@pytest.mark.parametrize(
    ("vpn", "mgmt", "reach", "want"),
    [
        ({"path": "auto"}, None, None, "direct"),
        ({"path": "auto"}, None, Reach(ipv4=True), "direct"),
        ({"path": "auto", "endpoint6": "v6.example.jp"}, None, Reach(ipv4=False, ipv6=True), "ipv6"),
        ({"path": "auto", "relay_endpoint": HUB}, LINK, Reach(ipv4=False, ipv6=False), "relay"),
        (
            {"path": "auto", "relay_endpoint": HUB, "endpoint6": "v6.example.jp"},
            LINK,
            Reach(False, True),
            "ipv6",
        ),
        ({"path": "auto", "relay_endpoint": HUB}, {**LINK, "enabled": False}, Reach(False, False), "direct"),
        ({"path": "relay", "relay_endpoint": HUB}, LINK, Reach(ipv4=True), "relay"),
        ({"path": "direct"}, None, Reach(ipv4=False), "direct"),
    ],
)
def test_auto_path_follows_the_reachability_check(vpn, mgmt, reach, want):
    assert choose_path(cfg(with_vpn(mgmt, **vpn)), reach) == want


def test_path_settings_are_validated_in_japanese():
    assert "relay_endpoint" in issues(with_vpn(LINK, path="relay"))["vpn"]
    assert "管理接続" in issues(with_vpn(None, path="relay", relay_endpoint=HUB))["vpn.path"]
    assert "endpoint6" in issues(with_vpn(path="ipv6"))["vpn"]
    assert "relay_endpoint" in issues(with_vpn(relay_endpoint="hub.example.jp"))["vpn.relay_endpoint"] or \
        issues(with_vpn(relay_endpoint="hub.example.jp"))  # fmt: skip
    assert issues(with_vpn(LINK, path="relay", relay_endpoint=HUB)) == {}


def test_probe_peers_are_allowed_nothing():
    plan = render_server(cfg(with_vpn(probe=PROBE)), [])
    assert {p.public_key: p.allowed_ips for p in plan.peers} == {k: () for k in PROBE.values()}
    assert "3つとも" in issues(with_vpn(probe={**PROBE, "ipv6": PROBE["ipv4"]}))["vpn.probe"]


def test_a_probe_key_that_is_a_doctors_key_never_takes_his_addresses():
    doctor = Device(1, "yamada", "pc1", PROBE["ipv4"], "10.99.0.2", None, True, 0.0, None)
    plan = render_server(cfg(with_vpn(probe=PROBE)), [doctor])
    assert plan.peer_map()[PROBE["ipv4"]] == ("10.99.0.2/32",)
    assert len(plan.peers) == len({p.public_key for p in plan.peers}) == 3


def test_hub_relay_rules_forward_only_each_clinics_port():
    text = render_hub_rules([parse_clinic("40017=10.77.0.17:41000"), parse_clinic("40018=10.77.0.18")],
                            "10.77.0.1", "wg-hub")  # fmt: skip
    assert 'iifname != "wg-hub" fib daddr type local udp dport 40017 dnat to 10.77.0.17:41000' in text
    assert 'oifname "wg-hub" ct status dnat ip daddr 10.77.0.18 udp dport 51820 snat to 10.77.0.1' in text
    assert text.count("dnat to") == 2 and "tcp" not in text and "masquerade" not in text
    for bad in ("40017", "x=10.77.0.17", "40017=hub", "40017=10.77.0.17:x", "²=10.77.0.17", "1=10.77.0.17:²"):
        with pytest.raises(MamoriError):
            parse_clinic(bad)
    with pytest.raises(MamoriError):
        render_hub_rules([parse_clinic("1=10.77.0.17"), parse_clinic("1=10.77.0.18")], "10.77.0.1", "wg-hub")
    with pytest.raises(MamoriError):
        render_hub_rules([parse_clinic("1=10.77.0.17")], "10.77.0.1", 'wg"; flush ruleset')


# -- the reachability check (vpn/reach.py): the box's own record of probe handshakes ----------------------


@pytest.fixture
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    return c


def dump(handshakes: dict[str, float], endpoints: dict[str, str] | None = None) -> DumpState:
    endpoints = endpoints or {}
    peers = {
        PROBE[f]: PeerState(PROBE[f], endpoints.get(f), (), int(t), 0, 0, None) for f, t in handshakes.items()
    }
    return DumpState(SERVER, 51820, peers)


def test_reach_unknown_until_a_probe_round_then_per_family(ctx):
    c = cfg(with_vpn(LINK, path="auto", relay_endpoint=HUB, probe=PROBE))
    st = status(ctx, c)
    assert (st.ipv4.state, st.ipv6.state, st.link.state) == ("unknown", "unknown", "unknown")
    assert "まだ確認していません" in st.messages()[0]
    now = wall()
    # a round: IPv4 got in, IPv6 did not, the link (the control) did
    assert record(ctx, c, dump({"ipv4": now - 10, "link": now - 5}, {"ipv4": "198.51.100.77:40000"})) == 2
    assert record(ctx, c, dump({"ipv4": now - 10, "link": now - 5})) == 0  # seen already: no new row
    st = status(ctx, c)
    assert (st.ipv4.state, st.ipv6.state, st.link.state) == ("ok", "ng", "ok")
    assert st.ipv4.at == pytest.approx(now - 10) and st.ipv4.endpoint == "198.51.100.77:40000"
    assert st.messages()[0] == "ご自宅から接続できます（IPv4）" and st.path == "direct"
    assert st.messages()[1].startswith("IPv6 では接続できません")
    # a later round where IPv4 no longer gets in (the router lost its forward): the old success is stale
    record(ctx, c, dump({"ipv4": now - 10, "link": now + ROUND_S + 60}))
    st = status(ctx, c)
    assert st.ipv4.state == "ng" and st.path == "relay"
    assert st.messages("ja")[0] == "IPv4 では接続できません：ルーターでUDP 51820番を転送してください"
    assert st.messages("en")[0].startswith("not reachable over IPv4")
    with ctx.db.connection() as conn:
        rows = conn.execute("SELECT family, ts FROM vpn_reach ORDER BY id").fetchall()
    assert [r["family"] for r in rows] == ["ipv4", "link", "link"] and all(r["ts"] > 0 for r in rows)


def test_without_a_relay_the_link_probe_only_says_a_round_ran(ctx):
    c = cfg(with_vpn(probe=PROBE))  # no management link, no relay endpoint
    record(ctx, c, dump({"link": wall() - 5}))
    st = status(ctx, c)
    assert (st.ipv4.state, st.link.state) == ("ng", "off") and st.path == "direct"
    assert st.messages()[2] == "保守業者のハブ経由の中継は設定されていません"


def test_reach_ignores_peers_that_are_not_probes(ctx):
    c = cfg(with_vpn(probe=PROBE))
    other = DumpState(
        SERVER, 51820, {SERVER: PeerState(SERVER, "198.51.100.20:1", ("10.99.0.2/32",), 99, 0, 0, None)}
    )
    assert record(ctx, c, other) == 0
    assert record(ctx, cfg(), dump({"ipv4": 99})) == 0  # no vpn.probe: nothing is a probe


def test_the_vpn_page_says_in_plain_japanese_whether_doctors_get_in(tmp_path):
    from tests.webui_fixtures import make_box

    box = make_box(tmp_path)
    box.add("admin", "admin")
    client = box.client()
    box.login(client, "admin")
    page = client.get("/vpn/").get_data(as_text=True)
    assert "ご自宅からの接続" in page and "IPv4 はまだ確認していません" in page
    with box.ctx.db.connection() as conn:  # what the daemon's vpn-reach worker records from a probe round
        for family, at in (("ipv6", wall() - 20), ("link", wall() - 10)):
            conn.execute(
                "INSERT INTO vpn_reach (ts, family, handshake_at) VALUES (?, ?, ?)", (at, family, at)
            )
    page = client.get("/vpn/").get_data(as_text=True)
    assert "ご自宅から接続できます（IPv6）" in page
    assert "IPv4 では接続できません：ルーターでUDP 51820番を転送してください" in page and "に確認" in page
