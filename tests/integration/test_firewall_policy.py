"""Every cell of the default policy (docs/firewall.md) proven with real packets in the lab clinic.

TCP connect, UDP echo and ping, in both directions, through the real `inet mamori` table in the box
namespace; plus NAT, the wan port scan, the X-ray device's single allowed path, VPN access per user
(over a plain veth standing in for the WireGuard interface), and a schedule closing the guest zone.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.integration.test_firewall_helpers import (
    apply_config,
    clinic_lab,
    in_ns,
    serve,
    sets_call,
    tcp_ok,
    tcp_peer_seen,
    udp_ok,
)
from tests.unit.test_firewall_helpers import example_dict

pytestmark = pytest.mark.integration

BOX_WAN, BOX_LAN, BOX_GUEST, BOX_DEV, BOX_VPN = (
    "203.0.113.2",
    "192.168.10.1",
    "192.168.20.1",
    "192.168.30.1",
    "10.99.0.1",
)
SERVER, EMR, RECEPTION, PACS, PHONE, XRAY, VPNC = (
    "198.51.100.10", "192.168.10.10", "192.168.10.20", "192.168.10.30", "192.168.20.50", "192.168.30.40", "10.99.0.2",
)  # fmt: skip
SERVICES = ["tcp/80", "tcp/443", "tcp/445", "tcp/3389", "tcp/22", "tcp/104", "udp/5000", "udp/137"]
BOX_SERVICES = ["tcp/443", "tcp/22", "tcp/53", "tcp/8443", "udp/53", "udp/123", "udp/51820"]


def _cfg():
    data = example_dict()
    for user in data["vpn"]["users"]:
        user.pop("hours", None)  # the cells must not depend on the time of day the suite runs
    from appliance.config.model import MamoriConfig

    return MamoriConfig.model_validate(data)


def _vpn_peer(lab) -> None:
    """A host behind the box's vpn interface: a veth named like the WireGuard interface."""
    ns = f"{lab.prefix}-vpnc"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    lab.namespaces.append(ns)
    subprocess.run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "mamori-wg",
                    "netns", lab.ns("box")], check=True)  # fmt: skip
    lab.run("vpnc", ["ip", "link", "set", "lo", "up"])
    lab.run("vpnc", ["ip", "link", "set", "eth0", "up"])
    lab.run("vpnc", ["ip", "addr", "add", f"{VPNC}/24", "dev", "eth0"])
    lab.run("vpnc", ["ip", "route", "add", "default", "via", BOX_VPN])
    lab.run("box", ["ip", "link", "set", "mamori-wg", "up"])
    lab.run("box", ["ip", "addr", "add", f"{BOX_VPN}/24", "dev", "mamori-wg"])


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    with clinic_lab(str(tmp_path_factory.mktemp("fwpol")), _cfg()) as env:
        lab = env[0]
        _vpn_peer(lab)
        # an attacker whose ISP routes the clinic's private ranges to the box: the firewall, not routing, must stop it
        lab.run("router", ["ip", "route", "add", "192.168.0.0/16", "via", BOX_WAN])
        for key in ("server", "emr", "pacs", "phone", "xray", "reception"):
            serve(lab, key, SERVICES)
        serve(lab, "box", BOX_SERVICES)
        yield env


def reach(lab, src: str, dst: str, kind: str) -> bool:
    proto, _, port = kind.partition("/")
    if proto == "ping":
        return lab.ping(src, dst, count=1, wait=0.7)
    if proto == "tcp":
        return tcp_ok(lab, src, dst, int(port), timeout=0.7)
    return udp_ok(lab, src, dst, int(port), timeout=0.7)


CELLS = [
    # wan -> anything: drop (replies aside), except the WireGuard port on the box
    ("server", BOX_WAN, "tcp/443", False), ("server", BOX_WAN, "tcp/22", False), ("server", BOX_WAN, "ping", False),
    ("server", BOX_WAN, "udp/53", False), ("server", BOX_WAN, "udp/51820", True),
    ("attacker", EMR, "tcp/443", False), ("attacker", EMR, "ping", False), ("attacker", EMR, "udp/5000", False),
    ("attacker", PHONE, "tcp/80", False), ("attacker", XRAY, "tcp/104", False),
    # lan -> internet: allowed, ransomware ports blocked
    ("reception", SERVER, "tcp/80", True), ("reception", SERVER, "udp/5000", True), ("reception", SERVER, "ping", True),
    ("reception", SERVER, "tcp/445", False), ("reception", SERVER, "tcp/3389", False), ("reception", SERVER, "udp/137", False),
    # lan -> devices: allowed; lan -> guest: drop
    ("reception", XRAY, "tcp/443", True), ("reception", XRAY, "ping", True), ("emr", XRAY, "udp/5000", True),
    ("reception", PHONE, "tcp/80", False), ("reception", PHONE, "ping", False),
    # lan -> box: web UI, DNS, NTP, ping; nothing else
    ("reception", BOX_LAN, "tcp/443", True), ("reception", BOX_LAN, "udp/53", True), ("reception", BOX_LAN, "udp/123", True),
    ("reception", BOX_LAN, "ping", True), ("reception", BOX_LAN, "tcp/22", False), ("reception", BOX_LAN, "udp/51820", False),
    # guest -> internet only; guest -> internal zones and the box: drop, DHCP/DNS excepted
    ("phone", SERVER, "tcp/80", True), ("phone", SERVER, "udp/5000", True), ("phone", SERVER, "ping", True),
    ("phone", SERVER, "tcp/445", False),
    ("phone", EMR, "tcp/443", False), ("phone", EMR, "ping", False), ("phone", EMR, "udp/5000", False),
    ("phone", XRAY, "tcp/104", False), ("phone", XRAY, "ping", False),
    ("phone", BOX_GUEST, "tcp/443", False), ("phone", BOX_GUEST, "ping", False), ("phone", BOX_GUEST, "udp/123", False),
    ("phone", BOX_LAN, "tcp/443", False), ("phone", BOX_GUEST, "udp/53", True), ("phone", BOX_GUEST, "tcp/53", True),
    # devices -> nothing but what rules allow: X線装置 -> PACS DICOM only; no internet
    ("xray", PACS, "tcp/104", True), ("xray", PACS, "tcp/443", False), ("xray", PACS, "ping", False),
    ("xray", EMR, "tcp/104", False), ("xray", RECEPTION, "tcp/445", False),
    ("xray", SERVER, "tcp/80", False), ("xray", SERVER, "ping", False), ("xray", SERVER, "udp/5000", False),
    ("xray", PHONE, "tcp/80", False),
    ("xray", BOX_DEV, "udp/53", True), ("xray", BOX_DEV, "udp/123", True), ("xray", BOX_DEV, "tcp/443", False),
    ("xray", BOX_DEV, "ping", False),
    # vpn (no session admitted): only the VPN portal on the box's vpn address
    ("vpnc", EMR, "tcp/443", False), ("vpnc", SERVER, "tcp/80", False), ("vpnc", BOX_VPN, "tcp/8443", True),
    ("vpnc", BOX_VPN, "tcp/443", True), ("vpnc", BOX_VPN, "tcp/22", False), ("vpnc", BOX_VPN, "udp/53", False),
    # internal -> vpn clients: drop (replies aside)
    ("reception", VPNC, "ping", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("src", "dst", "kind", "allowed"), CELLS, ids=[f"{c[0]}->{c[1]}:{c[2]}" for c in CELLS]
)
def test_policy_cell(clinic: tuple, src: str, dst: str, kind: str, allowed: bool) -> None:
    assert reach(clinic[0], src, dst, kind) is allowed


def test_lan_is_masqueraded_on_wan(clinic: tuple) -> None:
    assert tcp_peer_seen(clinic[0], "reception", SERVER, 80) == BOX_WAN
    assert tcp_peer_seen(clinic[0], "xray", PACS, 104) == XRAY  # internal traffic is not NATed


def test_wan_port_scan_finds_only_wireguard(clinic: tuple) -> None:
    lab = clinic[0]
    fast = ["nmap", "-n", "-Pn", "--max-retries", "1", "--max-rtt-timeout", "100ms", "--initial-rtt-timeout", "50ms",
            "--min-rate", "1000"]  # fmt: skip
    # the box listens on tcp 443/22/53/8443 and udp 53/123/51820 on every address (see BOX_SERVICES)
    tcp = lab.run("attacker", [*fast, "-sS", "-p", "1-1024,8443,51820", BOX_WAN], timeout=180).stdout
    udp = lab.run("attacker", [*fast, "-sU", "-p", "53,123,51820", BOX_WAN], timeout=120).stdout
    open_ports = re.findall(r"^(\d+/\w+)\s+open\s", tcp + udp, re.M)
    assert open_ports == ["51820/udp"], tcp + udp
    assert "1026 filtered tcp ports" in tcp, tcp


def test_vpn_user_reaches_only_their_access_list(clinic: tuple) -> None:
    lab, cfg, state = clinic
    in_ns(lab.ns("box"), sets_call, cfg, state, "admit_vpn", "yamada", VPNC, 300)
    try:
        assert tcp_ok(lab, "vpnc", EMR, 443)  # yamada: 電子カルテ HTTPS
        assert not tcp_ok(lab, "vpnc", EMR, 22, timeout=0.7)  # vendor-a's access, not yamada's
        assert not tcp_ok(lab, "vpnc", PACS, 104, timeout=0.7)
        assert not tcp_ok(lab, "vpnc", SERVER, 80, timeout=0.7)
    finally:
        in_ns(lab.ns("box"), sets_call, cfg, state, "revoke_vpn", "yamada", VPNC)
    assert not tcp_ok(lab, "vpnc", EMR, 443, timeout=0.7)
    in_ns(lab.ns("box"), sets_call, cfg, state, "admit_vpn", "vendor-a", VPNC, 300)
    try:
        assert tcp_ok(lab, "vpnc", EMR, 22) and not tcp_ok(lab, "vpnc", EMR, 443, timeout=0.7)
    finally:
        in_ns(lab.ns("box"), sets_call, cfg, state, "revoke_vpn", "vendor-a", VPNC)


def _guest_schedule(open_now: bool):
    """A schedule for the guest zone that is open right now (today, around now) or closed (tomorrow only)."""
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=9)))  # the clinic's time (Asia/Tokyo)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    day = days[now.weekday()] if open_now else days[(now.weekday() + 1) % 7]
    start = max(now - dt.timedelta(minutes=30), now.replace(hour=0, minute=0))
    end = min(now + dt.timedelta(minutes=30), now.replace(hour=23, minute=59))
    data = example_dict()
    data["firewall"]["schedules"].append({"name": "wifi", "days": [day], "start": start.strftime("%H:%M"),
                                          "end": end.strftime("%H:%M")})  # fmt: skip
    data["firewall"]["zone_schedules"] = {"guest": "wifi"}
    from appliance.config.model import MamoriConfig

    return MamoriConfig.model_validate(data)


def test_schedule_closes_the_guest_zone(clinic: tuple) -> None:
    lab, cfg, state = clinic
    try:
        in_ns(lab.ns("box"), apply_config, _guest_schedule(open_now=False), state)
        assert not reach(lab, "phone", SERVER, "tcp/80")
        assert not reach(lab, "phone", SERVER, "ping")
        assert reach(lab, "phone", BOX_GUEST, "udp/53")  # DNS on the box still answers
        assert reach(lab, "reception", SERVER, "tcp/80")  # other zones unaffected
        in_ns(lab.ns("box"), apply_config, _guest_schedule(open_now=True), state)
        assert reach(lab, "phone", SERVER, "tcp/80")
        assert reach(lab, "phone", SERVER, "ping")
    finally:
        in_ns(lab.ns("box"), apply_config, cfg, state)


def test_port_forward_only_when_configured(clinic: tuple) -> None:
    lab, cfg, state = clinic
    assert not tcp_ok(lab, "server", BOX_WAN, 8080, timeout=0.7)
    data = example_dict()
    data["firewall"]["port_forwards"] = [{"port": "tcp/8080", "to_host": "電子カルテ", "to_port": 443}]
    from appliance.config.model import MamoriConfig

    try:
        in_ns(lab.ns("box"), apply_config, MamoriConfig.model_validate(data), state)
        assert tcp_peer_seen(lab, "server", BOX_WAN, 8080) == SERVER  # reached 電子カルテ:443, source kept
        assert not tcp_ok(lab, "server", BOX_WAN, 8081, timeout=0.7)
        assert not tcp_ok(lab, "server", EMR, 445, timeout=0.7)  # only the forwarded port
    finally:
        in_ns(lab.ns("box"), apply_config, cfg, state)
    assert not tcp_ok(lab, "server", BOX_WAN, 8080, timeout=0.7)


def test_nothing_leaked_into_other_namespaces(clinic: tuple) -> None:
    """Our table lives only in the box: the hosts' namespaces have no nftables ruleset at all."""
    lab = clinic[0]
    for key in ("router", "server", "reception"):
        assert lab.run(key, ["nft", "list", "ruleset"]).stdout.strip() == ""
    assert os.path.exists(f"/run/netns/{lab.ns('box')}")
