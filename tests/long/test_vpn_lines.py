"""Doctors reach the clinic on every Japanese line (issue 17), each line its own small lab, nothing faked:
the clinic router (port forward, a MAP-E-like port set, carrier NAT / DS-Lite with IPv6, carrier NAT alone),
the vendor's hub (wireguard-go) holding the box's management link, relaying with exactly the rules
`mamori mgmt hub-relay-rules` prints and probing with `fleet/relay/probe`, and the real daemon with its MFA
portal. For each line: `mamori vpn reach` tells the truth after a real probe round; the doctor's config is
issued for the path the box chose (vpn.path: auto), he connects, signs in with password + TOTP and reaches
exactly his access list (電子カルテ HTTPS, not its SSH, not 受付PC). On the relay: a capture on the hub
(tcpdump) sees only UDP to and from the relay and link ports, no TCP and not the marker the doctor sent, and
the hub's own probes of the clinic LAN are dropped. Every wait is bounded; every process stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab import lines
from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.topology import Hub, Lab
from tests.integration.test_firewall_helpers import wait_until
from tests.integration.test_vpn_gate import ECHO, PASSWORD, fresh_code, portal, totp_secret
from tests.long.test_mgmt_lab import probes, reached
from vpn.client import parse_client_conf, up_client
from vpn.wg import WgInterface

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="run make setup (tcpdump)"),
]
EMR, RECEPTION = "192.168.10.10", "192.168.10.20"
CLINIC_HOSTS = [EMR, RECEPTION, "192.168.10.30", "192.168.20.50", "192.168.30.40"]
CLINIC_NETS = ["192.168.10.0/24", "192.168.20.0/24", "192.168.30.0/24", "10.99.0.0/24"]
MARKER = b"MAMORI-PLAINTEXT-MARKER-17"
_count = iter(range(1, 1000))


@dataclass
class Line:
    lab: Lab
    box: Box
    hub: Hub
    keys: Path
    tmp: Path
    port: int

    def reach(self) -> dict:
        return json.loads(self.box.mamori("vpn", "reach", "--json").stdout)

    def probe(self, ipv6: bool = False) -> dict:
        return lines.probe_round(self.lab, self.hub, self.keys, lines.box_vpn_key(self.box), self.port, ipv6)


def build(tmp: Path, forward: str | None, ipv6: bool, listen_port: int = 51820) -> Iterator[Line]:
    """One clinic on one line: router, hub with the relay, the box applied and its daemon running."""
    lab = Lab(f"vl{os.getpid() % 10000}x{next(_count)}")
    box: Box | None = None
    try:
        lab.up()
        if forward is None:
            lab.nat_clinic()  # carrier NAT / DS-Lite: nothing gets in over IPv4
        else:
            lines.router_forward(lab, forward)
        hub = lab.add_hub()
        if ipv6:
            lines.router_ipv6(lab, listen_port)
        keys = tmp / "probe-keys"
        data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        data["ids"]["enabled"] = False  # two cores: Suricata is not what is tested here
        for user in data["vpn"]["users"]:
            user.pop("hours", None)  # the test must pass at any hour
        data["vpn"].update(listen_port=listen_port, endpoint=lines.PUBLIC4, path="auto",
                           relay_endpoint=f"198.51.100.77:{lines.RELAY_PORT}",
                           probe=lines.make_probe_keys(keys))  # fmt: skip
        if ipv6:
            data["interfaces"][0]["address6"] = f"{lines.BOX6}/64"
            data["vpn"]["endpoint6"] = lines.BOX6
        data["mgmt"] = lines.mgmt_section(hub)
        box = make_box(lab, tmp / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        box.mamori("config", "apply", "-m", "回線の試験")
        if ipv6:
            lines.box_ipv6_route(lab)
        lines.hub_relay(box, hub, listen_port)
        lab.spawn("emr", [sys.executable, "-c", ECHO, "443", "22"])
        lab.spawn("reception", [sys.executable, "-c", ECHO, "443"])
        box.start_daemon()
        assert lines.wait_link(box, hub), "the management link did not come up"
        yield Line(lab, box, hub, keys, tmp, listen_port)
    finally:
        try:
            if box is not None:
                box.stop_daemon()
            for key, name, run_dir in (("box", lab.wg_name(), tmp / "state" / "run"),
                                       ("box", lab.wg_name("m"), tmp / "state" / "run"),
                                       ("doctor", lab.wg_name("d"), tmp)):  # fmt: skip
                WgInterface(name, run_dir=run_dir, netns=lab.ns(key)).delete()
        finally:
            lab.down()


def doctor_signs_in(line: Line, device: str = "home-pc") -> str:
    """Issue the doctor's config (the path the box chose), bring it up at home, sign in; returns the .conf."""
    box, lab = line.box, line.lab
    out = line.tmp / "doctor"
    res = box.mamori(
        "vpn", "add", "yamada", device, "--out", str(out), "--password-stdin", stdin=PASSWORD + "\n"
    )
    conf_text = (out / f"yamada-{device}.conf").read_text(encoding="utf-8")
    up_client(parse_client_conf(conf_text), lab.wg_name("d"), line.tmp, netns=lab.ns("doctor"))
    assert wait_until(lambda: portal(lab, "doctor", "get")[0] == 200, timeout=30) is not None, conf_text
    assert not lab.tcp_connect("doctor", EMR, 443, timeout=1)  # before sign-in: the portal only
    status, body = portal(lab, "doctor", "login", PASSWORD, fresh_code(totp_secret(res.stdout)))
    assert status == 200 and "接続中です" in body, body
    assert wait_until(lambda: lab.tcp_connect("doctor", EMR, 443, timeout=1), timeout=10) is not None
    assert not lab.tcp_connect("doctor", EMR, 22, timeout=1)  # not in his access list
    assert not lab.tcp_connect("doctor", RECEPTION, 443, timeout=1)
    return conf_text


def logout_cuts(line: Line) -> None:
    status, body = portal(line.lab, "doctor", "logout")
    assert status == 200 and "接続を終えました" in body
    assert not line.lab.tcp_connect("doctor", EMR, 443, timeout=1)


@pytest.fixture
def port_forward(tmp_path: Path) -> Iterator[Line]:
    yield from build(tmp_path, "51820", ipv6=False)


def test_a_router_forwarding_the_port_direct_over_ipv4(port_forward: Line) -> None:
    line = port_forward
    got = line.probe()
    assert got["results"] == {"ipv4": True, "ipv6": None, "link": True}, got
    reach = line.reach()
    assert reach["ipv4"]["state"] == "ok" and reach["path"] == "direct", reach
    text = line.box.mamori("vpn", "reach").stdout
    assert "ご自宅から接続できます（IPv4）" in text and "直接（IPv4）" in text
    conf = doctor_signs_in(line)
    assert f"Endpoint = {lines.PUBLIC4}:51820" in conf and "# 接続経路: 直接" in conf and "MTU" not in conf
    peers = line.lab.run("box", ["wg", "show", line.lab.wg_name(), "endpoints"]).stdout
    assert "198.51.100.20:" in peers  # the doctor's home address: he came in directly
    logout_cuts(line)


@pytest.fixture
def map_e(tmp_path: Path) -> Iterator[Line]:
    yield from build(tmp_path, "40960-41199", ipv6=False)


def test_b_map_e_port_set_says_51820_does_not_get_in_until_the_port_is_inside(map_e: Line) -> None:
    line = map_e
    assert line.probe()["results"]["ipv4"] is False
    reach = line.reach()
    assert reach["ipv4"]["state"] == "ng", reach
    assert (
        "IPv4 では接続できません：ルーターでUDP 51820番を転送してください"
        in line.box.mamori("vpn", "reach").stdout
    )
    # the clinic picks a port inside the router's set; the relay rules follow the new port
    data = yaml.safe_load(line.box.config.read_text(encoding="utf-8"))
    data["vpn"]["listen_port"] = 41000
    line.box.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    line.box.mamori("config", "apply", "-m", "MAP-E のポートにする")
    line.port = 41000
    assert wait_until(lambda: line.lab.run("box", ["wg", "show", line.lab.wg_name(), "listen-port"]).stdout.strip()
                      == "41000", timeout=20) is not None  # fmt: skip
    assert line.probe()["results"]["ipv4"] is True
    reach = line.reach()
    assert reach["ipv4"]["state"] == "ok" and reach["path"] == "direct", reach
    conf = doctor_signs_in(line)
    assert f"Endpoint = {lines.PUBLIC4}:41000" in conf and "UDP 41000番" in conf


@pytest.fixture
def ds_lite(tmp_path: Path) -> Iterator[Line]:
    yield from build(tmp_path, None, ipv6=True)


def test_c_ds_lite_no_ipv4_in_but_ipv6_and_the_doctor_comes_over_ipv6(ds_lite: Line) -> None:
    line = ds_lite
    got = line.probe(ipv6=True)
    assert got["results"] == {"ipv4": False, "ipv6": True, "link": True}, got
    reach = line.reach()
    assert (reach["ipv4"]["state"], reach["ipv6"]["state"], reach["path"]) == ("ng", "ok", "ipv6"), reach
    text = line.box.mamori("vpn", "reach").stdout
    assert "ご自宅から接続できます（IPv6）" in text and "IPv4 では接続できません" in text
    conf = doctor_signs_in(line)
    assert f"Endpoint = [{lines.BOX6}]:51820" in conf and "IPv6 で直接" in conf
    peers = line.lab.run("box", ["wg", "show", line.lab.wg_name(), "endpoints"]).stdout
    assert "[2001:db8:ffff::20]:" in peers, peers
    logout_cuts(line)


@pytest.fixture
def cgn(tmp_path: Path) -> Iterator[Line]:
    yield from build(tmp_path, None, ipv6=False)


CAPTURE = r"""
import sys
print(open(sys.argv[1], "rb").read().find(sys.argv[2].encode()) >= 0)
"""


def test_d_carrier_nat_ipv4_only_relay_through_the_hub_which_stays_blind(cgn: Line) -> None:
    line = cgn
    lab, hub = line.lab, line.hub
    got = line.probe()
    assert got["results"] == {"ipv4": False, "ipv6": None, "link": True}, got
    reach = line.reach()
    assert (reach["ipv4"]["state"], reach["link"]["state"], reach["path"]) == ("ng", "ok", "relay"), reach
    assert "中継でも接続できます" in line.box.mamori("vpn", "reach").stdout
    # the box's VPN interface leaves room for the link's own WireGuard
    assert "mtu 1340" in lab.run("box", ["ip", "link", "show", lab.wg_name()]).stdout
    pcap = line.tmp / "hub.pcap"
    cap = lab.spawn(hub.key, ["tcpdump", "-Z", "root", "-i", "any", "-n", "-U", "-s", "0", "-w", str(pcap)])
    assert wait_until(lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=10) is not None
    try:
        conf = doctor_signs_in(line)
        assert f"Endpoint = 198.51.100.77:{lines.RELAY_PORT}" in conf and "MTU = 1340" in conf
        assert "# 接続経路: 保守業者のハブ経由の中継" in conf
        # plaintext the hub must never see: a marker sent over TCP to the 電子カルテ through the tunnel
        send = ("import socket,sys;s=socket.create_connection((sys.argv[1],443),timeout=5);"
                "s.sendall(sys.argv[2].encode()*50);print(s.recv(64))")  # fmt: skip
        assert (
            MARKER[:8]
            in lab.run("doctor", [sys.executable, "-c", send, EMR, MARKER.decode()]).stdout.encode()
        )
        # a bigger transfer fits the reduced MTU (a wrong MTU would stall here)
        big = ("import socket,sys;s=socket.create_connection((sys.argv[1],443),timeout=10);d=b'x'*200000;"
               "s.sendall(d);n=0\nwhile n<len(d):\n b=s.recv(65536)\n if not b: break\n n+=len(b)\nprint(n)")  # fmt: skip
        assert lab.run("doctor", [sys.executable, "-c", big, EMR], timeout=60).stdout.strip() == "200000"
        peers = lab.run("box", ["wg", "show", lab.wg_name(), "endpoints"]).stdout
        assert f"{hub.address}:" in peers, peers  # the doctor arrives through the link, from the hub
        logout_cuts(line)
    finally:
        lab.stop(cap)
    packets = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n", "-q"], capture_output=True, text=True, timeout=60
    ).stdout
    assert packets.count("UDP") > 20, packets[-500:]
    tcp = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-n", "tcp"], capture_output=True, text=True, timeout=60
    )
    assert tcp.stdout.strip() == "", tcp.stdout[:500]
    other = subprocess.run(["tcpdump", "-r", str(pcap), "-n", "not", "(", "udp", "port", str(lines.RELAY_PORT), "or",
                            "udp", "port", "51820", "or", "arp", "or", "icmp6", ")"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.stdout.strip() == "", other.stdout[:500]
    assert MARKER not in pcap.read_bytes()  # ciphertext only: the hub never saw the doctor's bytes
    # a hostile hub routes the clinic's networks into the link: its probes of the clinic LAN are dropped
    box_key = json.loads(line.box.mamori("mgmt", "status", "--json", check=False).stdout)["box_public_key"]
    hub.add_peer(box_key, [f"{lines.BOX_LINK}/32", *CLINIC_NETS])
    assert reached(lab, hub.key, probes(CLINIC_HOSTS)) == []
