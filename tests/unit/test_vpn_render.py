"""Pure VPN renderers and the `wg show dump` parser: table-driven, valid and invalid input side by side."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import ApplyError
from vpn.render import RenderError, access_networks, client_conf, render_server
from vpn.store import Device
from vpn.wg import PeerState, diff_peers, parse_dump, peer_args

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
K1 = "ZwiGMueot1xuSwtN17gJ5PvMlENvmhTTuN6Ko83hdFQ="
K2 = "3SK+Ln210t7ltGRMf+4dJX1EJO+rjBi6KOAgsEdQNBI="
SERVER = "obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4="

# Captured from wireguard-go 0.0.2023 via `wg show IF dump` (private key replaced).
REAL_DUMP = (
    "PRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEYPRI=\tobD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4=\t51999\toff\n"
    f"{K1}\t(none)\t(none)\t10.99.0.5/32,fd4d:616d:6f72::5/128\t0\t0\t0\toff\n"
    f"{K2}\t(none)\t198.51.100.20:40000\t10.99.0.6/32\t1764120000\t1204\t980\t25\n"
)


def cfg(text: str = EXAMPLE):
    return parse_config(text).model


def dev(i: int, user: str = "yamada", key: str = K1, revoked: float | None = None) -> Device:
    return Device(
        i, user, f"pc{i}", key, f"10.99.0.{i + 1}", f"fd4d:616d:6f72::{i + 1:x}", True, 0.0, revoked
    )


def test_parse_real_dump_drops_private_key():
    state = parse_dump(REAL_DUMP)
    assert state.public_key == SERVER and state.listen_port == 51999 and state.malformed == 0
    assert "PRIVATEKEY" not in repr(state)
    assert state.peers[K1].allowed_ips == ("10.99.0.5/32", "fd4d:616d:6f72::5/128")
    assert state.peers[K1].endpoint is None and state.peers[K1].keepalive is None
    p2 = state.peers[K2]
    assert (p2.endpoint, p2.latest_handshake, p2.rx, p2.tx, p2.keepalive) == (
        "198.51.100.20:40000", 1764120000, 1204, 980, 25,
    )  # fmt: skip


@pytest.mark.parametrize(
    "bad_line",
    [
        f"{K1}\t(none)\t(none)\t10.99.0.5/32\t0\t0\t0",  # a field missing
        f"{K1}\t(none)\t(none)\t10.99.0.5/32\tNaN\t0\t0\toff",  # handshake not a number
        f"{K1}\t(none)\t1.2.3.4:5\t10.99.0.5/32\t0\t-\t0\toff\textra",
    ],
)
def test_parse_dump_counts_malformed_peer_lines(bad_line):
    head = REAL_DUMP.splitlines()[0]
    state = parse_dump(f"{head}\n{bad_line}\n{REAL_DUMP.splitlines()[2]}\n")
    assert state.malformed == 1 and list(state.peers) == [K2]


@pytest.mark.parametrize("bad", ["", "garbage", "a\tb\tc\td"])
def test_parse_dump_refuses_bad_interface_line(bad):
    with pytest.raises(ApplyError):
        parse_dump(bad)


def test_diff_peers_only_touches_changes():
    have = parse_dump(REAL_DUMP).peers
    k3 = "a" * 43 + "="
    want = {K1: ("fd4d:616d:6f72::5/128", "10.99.0.5/32"), k3: ("10.99.0.9/32",)}
    d = diff_peers(want, have)
    assert d.upsert == [(k3, ("10.99.0.9/32",))] and d.remove == [K2]
    assert peer_args(d) == ["peer", k3, "allowed-ips", "10.99.0.9/32", "peer", K2, "remove"]
    assert not diff_peers({K1: have[K1].allowed_ips}, {K1: have[K1]})
    changed = diff_peers({K1: ("10.99.0.7/32",)}, {K1: PeerState(K1, None, ("10.99.0.5/32",), 0, 0, 0, None)})
    assert changed.upsert == [(K1, ("10.99.0.7/32",))] and not changed.remove


def test_render_server_only_enabled_users_active_devices():
    c = cfg(EXAMPLE.replace("      session_hours: 2", "      session_hours: 2\n      enabled: false"))
    devices = [
        dev(1),
        dev(2, key=K2, revoked=5.0),
        dev(3, user="vendor-a", key="b" * 43 + "="),
        dev(4, user="ghost"),
    ]
    plan = render_server(c, devices, "mamori-wg")
    assert plan.enabled and plan.listen_port == 51820 and plan.address == "10.99.0.1/24"
    assert plan.peer_map() == {K1: ("10.99.0.2/32", "fd4d:616d:6f72::2/128")}


def test_render_server_disabled_vpn_has_no_peers():
    data = yaml.safe_load(EXAMPLE)
    data["vpn"]["enabled"] = False
    plan = render_server(cfg(yaml.safe_dump(data, allow_unicode=True)), [dev(1)], "x")
    assert not plan.enabled and plan.peers == () and plan.ifname == "x"
    assert render_server(cfg(), [], None).ifname == cfg().vpn.interface


@pytest.mark.parametrize(
    "user, expected",
    [
        ("yamada", ["10.99.0.0/24", "fd4d:616d:6f72::/64", "192.168.10.10/32"]),
        ("vendor-a", ["10.99.0.0/24", "fd4d:616d:6f72::/64", "192.168.10.10/32"]),
    ],
)
def test_access_networks(user, expected):
    assert access_networks(cfg(), user) == expected


def test_access_networks_groups_and_zones():
    text = EXAMPLE.replace(
        "access: [{dst: 電子カルテ, service: HTTPS}]", "access: [{dst: 診療系サーバー}, {dst: devices}]"
    )
    assert access_networks(cfg(text), "yamada")[2:] == [
        "192.168.10.10/32",
        "192.168.10.30/32",
        "192.168.30.0/24",
    ]
    with pytest.raises(RenderError):
        access_networks(cfg(), "nobody")


def test_client_conf_golden():
    conf = client_conf(cfg(), dev(1), SERVER, private_key="P" * 43 + "=")
    assert conf == (
        "# Mamori VPN: yamada / pc1\n# 接続経路: 直接（医院のルーターから本機の UDP 51820番へ）\n"
        "[Interface]\nPrivateKey = " + "P" * 43 + "=\n"
        "Address = 10.99.0.2/32, fd4d:616d:6f72::2/128\n\n[Peer]\n"
        f"PublicKey = {SERVER}\nEndpoint = 203.0.113.2:51820\n"
        "AllowedIPs = 10.99.0.0/24, fd4d:616d:6f72::/64, 192.168.10.10/32\nPersistentKeepalive = 25\n"
    )


def test_client_conf_own_key_has_no_private_key_and_v6_endpoint():
    conf = client_conf(cfg(EXAMPLE.replace("endpoint: 203.0.113.2", "endpoint: 2001:db8::2")), dev(1), SERVER)
    assert "PrivateKey =" not in conf.replace("# PrivateKey", "") and "Endpoint = [2001:db8::2]:51820" in conf


def test_client_conf_needs_endpoint():
    with pytest.raises(RenderError) as exc:
        client_conf(cfg(EXAMPLE.replace("  endpoint: 203.0.113.2\n", "")), dev(1), SERVER)
    assert "vpn.endpoint" in exc.value.text("ja")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device", "pc\n[Peer]\nPublicKey = " + K2),
        ("device", "pc\r\nAllowedIPs = 0.0.0.0/0"),
        ("user", "yamada\n[Peer]"),
        ("device", "pc\u2028x"),
    ],
)
def test_client_conf_refuses_values_with_line_breaks(field, value):
    """A stored row that slipped past the store's checks (old data, another writer) is still refused."""
    c = cfg()
    d = dev(1)
    if field == "user":
        c = c.model_copy(update={"vpn": c.vpn.model_copy(update={"users": [
            u.model_copy(update={"name": value}) if u.name == "yamada" else u for u in c.vpn.users]})})  # fmt: skip
    d = Device(d.id, value if field == "user" else d.user, value if field == "device" else d.device, d.public_key,
               d.ip4, d.ip6, d.box_generated, d.created, d.revoked)  # fmt: skip
    with pytest.raises(RenderError) as exc:
        client_conf(c, d, SERVER, private_key="P" * 43 + "=")
    assert "改行" in exc.value.text("ja")


def test_client_conf_refuses_an_endpoint_with_a_line_break():
    c = cfg()
    c = c.model_copy(update={"vpn": c.vpn.model_copy(update={"endpoint": "203.0.113.2\n[Peer]"})})
    with pytest.raises(RenderError):
        client_conf(c, dev(1), SERVER)


def test_client_conf_round_trips_through_the_client_parser():
    from vpn.client import parse_client_conf

    conf = parse_client_conf(client_conf(cfg(), dev(1), SERVER, private_key="P" * 43 + "="))
    assert conf.addresses == ("10.99.0.2/32", "fd4d:616d:6f72::2/128")
    assert (conf.server_public_key, conf.endpoint, conf.keepalive) == (SERVER, "203.0.113.2:51820", 25)
    assert conf.allowed_ips[-1] == "192.168.10.10/32"
    with pytest.raises(ApplyError):
        parse_client_conf("[Interface]\nAddress = 10.99.0.2/32\n")
    with pytest.raises(ApplyError):
        parse_client_conf("[Peer]\nthis line has no equals sign\n")


def test_check_peers_refuses_duplicate_tunnel_addresses_and_broken_keys():
    from vpn.subsystem import check_peers

    check_peers(render_server(cfg(), [dev(1), dev(2, key=K2)], "wgunit"))
    clash = Device(9, "yamada", "x", "c" * 43 + "=", "10.99.0.2", None, True, 0.0, None)
    with pytest.raises(ApplyError):
        check_peers(render_server(cfg(), [dev(1), clash], "wgunit"))
    with pytest.raises(ApplyError):
        check_peers(render_server(cfg(), [dev(1, key="not-a-key")], "wgunit"))


def test_subsystem_render_is_pure_and_check_apply_read_the_stored_devices(ctx, tmp_path):
    """Render is a function of the config alone: no database at all (its file does not exist and is not
    created), same config -> same plan, whatever devices are stored. The devices come in at check/apply."""
    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context
    from vpn.render import InterfacePlan, render_interface
    from vpn.store import DeviceStore
    from vpn.subsystem import VpnSubsystem

    nowhere = tmp_path / "no-such-dir" / "m.db"
    pure = VpnSubsystem(Context(Paths(state_dir=tmp_path / "absent"), Database(nowhere)), ifname="wgunit")
    plan = pure.render(cfg())
    assert plan == pure.render(cfg()) == render_interface(cfg(), "wgunit")
    assert type(plan) is InterfacePlan and not hasattr(plan, "peers")
    assert not nowhere.parent.exists()

    sub = VpnSubsystem(ctx, ifname="wgunit")
    assert sub.render(cfg()) == plan and sub.with_stored_peers(plan).peers == ()  # nothing stored yet
    DeviceStore(ctx.db).add("yamada", "pc", K1, "10.99.0.1/24", None)
    assert sub.render(cfg()) == plan  # a stored device changes nothing in the rendering...
    assert sub.with_stored_peers(plan).peer_map() == {K1: ("10.99.0.2/32",)}  # ...it is a peer at apply
    with ctx.db.transaction() as conn:  # a broken stored key: check refuses it before anything is applied
        conn.execute(
            "INSERT INTO vpn_devices(user, device, public_key, ip4, created) VALUES ('yamada', 'bad', 'x', "
            "'10.99.0.9', 0)"
        )
    if shutil.which("wg") is not None:
        with pytest.raises(ApplyError, match="bad public key of yamada/bad"):
            sub.check(plan)
