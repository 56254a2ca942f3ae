"""The vendor hub's management link in the lab, nothing faked: a hub namespace on the internet side runs
wireguard-go; the clinic router NATs the box and lets nothing in; the real `mamori` enrols the link from a
code and the real daemon serves the web UI. The hub is hostile on purpose: it routes every clinic network
into the tunnel. Checks: the box dials out and the tunnel comes up with no wan rule added; the hub reaches
the box's web UI over the link; no clinic host, no other box address and no other port answers the hub
(counted; the never-forward counter proves the packets did arrive through the tunnel); after `mamori mgmt
cut` the hub hears nothing more and reaches nothing. Every process is stopped by PID."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.topology import Hub, Lab
from tests.integration.test_firewall_helpers import serve, tcp_ok, wait_until

pytestmark = pytest.mark.integration

BOX_LINK = "10.77.0.17"
CLINIC_NETS = ["192.168.10.0/24", "192.168.20.0/24", "192.168.30.0/24", "10.99.0.0/24"]
CLINIC_HOSTS = {"emr": "192.168.10.10", "reception": "192.168.10.20", "pacs": "192.168.10.30",
                "phone": "192.168.20.50", "xray": "192.168.30.40"}  # fmt: skip
BOX_OTHER = ["192.168.10.1", "192.168.20.1", "192.168.30.1", "10.99.0.1", "203.0.113.2"]
TCP = [22, 80, 443, 445, 3389, 8443, 104]
UDP = [53, 123]

# One process in the hub's namespace tries everything at once (threads) and prints what answered.
_PROBE = r"""
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
targets = json.loads(sys.argv[1])
def tcp(a, p):
    try:
        socket.create_connection((a, p), timeout=1.5).close(); return True
    except OSError:
        return False
def udp(a, p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
    try:
        s.sendto(b"ping", (a, p)); return s.recvfrom(100)[0] == b"ping"
    except OSError:
        return False
def ping(a, _):
    return subprocess.run(["ping", "-n", "-c", "1", "-W", "1", a], capture_output=True).returncode == 0
kinds = {"tcp": tcp, "udp": udp, "ping": ping}
with ThreadPoolExecutor(64) as pool:
    results = list(pool.map(lambda t: (t, kinds[t[1]](t[0], t[2])), [tuple(t) for t in targets]))
print(json.dumps([t for t, ok in results if ok]))
"""


def probes(addresses: list[str], ping: bool = True) -> list[tuple[str, str, int]]:
    out = [(a, "tcp", p) for a in addresses for p in TCP] + [(a, "udp", p) for a in addresses for p in UDP]
    return out + ([(a, "ping", 0) for a in addresses] if ping else [])


def reached(lab: Lab, key: str, targets: list[tuple[str, str, int]]) -> list[list]:
    res = lab.run(key, ["python3", "-c", _PROBE, json.dumps(targets)], timeout=120)
    return json.loads(res.stdout)


def in_wan(box: Box) -> list:
    data = json.loads(box.lab.run("box", ["nft", "-j", "list", "chain", "inet", "mamori", "in_wan"]).stdout)
    rules = [i["rule"] for i in data["nftables"] if "rule" in i]
    return [
        json.dumps(r["expr"], sort_keys=True).replace('"packets"', "").split('"counter"')[0] for r in rules
    ]


def never_dropped(box: Box) -> int:
    out = box.lab.run(
        "box", ["nft", "-j", "list", "counter", "inet", "mamori", "d_mgmt-link_any_never"]
    ).stdout
    return next(i["counter"]["packets"] for i in json.loads(out)["nftables"] if "counter" in i)


def link_exists(box: Box) -> bool:
    return box.lab.run("box", ["ip", "link", "show", box.lab.wg_name("m")], check=False).returncode == 0


@pytest.fixture
def clinic(lab: Lab, tmp_path: Path) -> tuple[Box, Hub]:
    lab.nat_clinic()
    hub = lab.add_hub()
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["ids"]["enabled"] = False  # two cores: Suricata is not what is tested here
    data["mgmt"] = {"enabled": False}
    box = make_box(lab, tmp_path / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    box.mamori("config", "apply", "-m", "初期設定")
    return box, hub


def test_link_dials_out_reaches_the_box_only_and_is_cut(clinic: tuple[Box, Hub]) -> None:
    box, hub = clinic
    lab = box.lab
    wan_before = in_wan(box)
    code = box.mamori("mgmt", "make-code", "--endpoint", hub.endpoint, "--hub-key", hub.public_key,
                      "--network", "10.77.0.0/16", "--address", BOX_LINK, "--hub-address", hub.address).stdout.strip()  # fmt: skip
    out = box.mamori("--lang", "en", "mgmt", "enrol", code, "--yes").stdout
    assert "hub key fingerprint:" in out
    status = json.loads(box.mamori("mgmt", "status", "--json", check=False).stdout)
    assert status["enabled"] and status["interface"] == lab.wg_name("m") and status["box_public_key"]
    box_key = status["box_public_key"]
    key_file = box.state_dir / "keys" / "mgmt-link.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # The hostile hub: the box as peer, and every clinic network routed into the tunnel.
    hub.add_peer(box_key, [f"{BOX_LINK}/32", *CLINIC_NETS])
    box.start_daemon()
    try:
        assert wait_until(lambda: hub.latest_handshake(box_key) > 0, timeout=40) is not None, "no handshake"
        # behind NAT: the hub saw the router's address, and no wan rule was added for the link
        endpoint = lab.run(hub.key, ["wg", "show", hub.ifname, "endpoints"]).stdout
        assert "198.51.100.1:" in endpoint, endpoint
        assert in_wan(box) == wan_before
        assert not tcp_ok(lab, hub.key, "203.0.113.2", 443)
        # the web UI answers the hub over the link (the daemon restarts it on the link address)
        assert wait_until(lambda: tcp_ok(lab, hub.key, BOX_LINK, 443), timeout=40) is not None, (
            box.state_dir / "run" / "webui.log"
        ).read_text()
        health = lab.run(
            hub.key, ["curl", "-sk", "--max-time", "10", f"https://{BOX_LINK}/healthz"], check=False
        )
        assert health.stdout == "ok", health
        assert "つながっています" in box.mamori("mgmt", "status").stdout
        # the daemon's watcher recorded when the hub connected; status shows it with the hub's doings
        assert (
            wait_until(lambda: "mgmt.link_up" in box.mamori("mgmt", "status").stdout, timeout=20) is not None
        )

        for host, _addr in CLINIC_HOSTS.items():
            serve(lab, host, [f"tcp/{p}" for p in TCP] + [f"udp/{p}" for p in UDP])
        # control: the listeners answer where the policy allows it (lan -> devices through the box)
        assert reached(lab, "reception", [("192.168.30.40", "tcp", 104), ("192.168.30.40", "udp", 53)]) == [
            ["192.168.30.40", "tcp", 104], ["192.168.30.40", "udp", 53]]  # fmt: skip
        dropped_before = never_dropped(box)
        targets = probes([*CLINIC_HOSTS.values(), *BOX_OTHER])
        targets += [(BOX_LINK, kind, p) for _, kind, p in probes([BOX_LINK], ping=False) if p != 443]
        assert reached(lab, hub.key, targets) == []
        assert never_dropped(box) > dropped_before  # the probes came through the tunnel and were dropped

        box.mamori("mgmt", "cut")
        assert not link_exists(box)
        status = json.loads(box.mamori("mgmt", "status", "--json", check=False).stdout)
        assert status["enabled"] is False
        rx = hub.transfer(box_key)[0]
        time.sleep(27)  # longer than the keepalive: a live box would have sent one
        assert hub.transfer(box_key)[0] == rx
        assert not link_exists(box)  # the daemon did not bring it back
        assert reached(lab, hub.key, probes([BOX_LINK, *CLINIC_HOSTS.values(), *BOX_OTHER])) == []
        audit = box.mamori("audit", "list", check=False).stdout
        assert "mgmt.cut" in audit
    finally:
        box.stop_daemon()
