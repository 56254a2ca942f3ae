"""Japanese clinic lines in the lab (issue 17): what the clinic router lets in, over IPv4 and IPv6, and the
vendor hub's VPN relay. Built on lab.topology.Lab's public methods only (other labs keep their router as is).

    forward   the router NATs the clinic and forwards UDP ports (one, or a MAP-E-like range) to the box
    cgn       carrier NAT / DS-Lite: nothing gets in over IPv4 (Lab.nat_clinic)
    ipv6      on top: IPv6 routed to the box, the home gateway's IPv6 filter letting in one UDP port only

The hub (Lab.add_hub) holds the box's management link, installs the relay rules `mamori mgmt
hub-relay-rules` prints (exactly those) and runs the reachability probe `fleet/relay/probe`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lab.box import REPO, Box
from lab.topology import Hub, Lab
from lab.waiting import wait_for

PUBLIC4 = "198.51.100.1"  # the router's outside address: the clinic's public IPv4
PUBLIC6_NET = "2001:db8:ffff::"  # the internet side over IPv6
ROUTER6_OUT, ROUTER6_IN = "2001:db8:ffff::1/64", "2001:db8:17::1/64"
BOX6 = "2001:db8:17::2"
HOST6 = {"doctor": "2001:db8:ffff::20/64", "hub": "2001:db8:ffff::77/64"}
BOX_LINK = "10.77.0.17"
HUB_NET = "10.77.0.0/16"
RELAY_PORT = 40017
PROBE = REPO / "fleet" / "relay" / "probe"


def router_forward(lab: Lab, ports: str) -> None:
    """A clinic NAT router that forwards UDP `ports` ("51820" or "40960-41199") to the box, nothing else."""
    rules = (
        "table ip labline {\n"
        " chain pre { type nat hook prerouting priority dstnat; policy accept;\n"
        f'  iifname "eth0" udp dport {ports} dnat to 203.0.113.2; }}\n'
        ' chain post { type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }\n'
        " chain inward { type filter hook forward priority 0; policy accept;\n"
        '  iifname "eth0" ct state established,related accept; iifname "eth0" ct status dnat accept;\n'
        '  iifname "eth0" drop; }\n'
        "}\n"
    )
    lab.run("router", ["nft", "-f", "-"], input=rules)


def router_ipv6(lab: Lab, allow_udp: int) -> None:
    """IPv6 through the router to the box, and a home gateway's IPv6 filter: replies, and new packets only to
    the box's UDP `allow_udp` (the pinhole the clinic opened). Hosts outside get IPv6 addresses too."""
    for key in ("box", "router", *HOST6):
        lab.run(
            key, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]
        )
    lab.run("router", ["ip", "-6", "addr", "add", ROUTER6_OUT, "dev", "eth0", "nodad"])
    lab.run("router", ["ip", "-6", "addr", "add", ROUTER6_IN, "dev", "eth1", "nodad"])
    lab.run("router", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
    for key, addr in HOST6.items():
        lab.run(key, ["ip", "-6", "addr", "add", addr, "dev", "eth0", "nodad"])
        lab.run(key, ["ip", "-6", "route", "add", "default", "via", ROUTER6_OUT.split("/")[0]])
    rules = (
        "table ip6 labline6 {\n"
        " chain inward { type filter hook forward priority 0; policy accept;\n"
        '  iifname "eth0" ct state established,related accept;\n'
        '  iifname "eth0" icmpv6 type { echo-request, packet-too-big } accept;\n'
        f'  iifname "eth0" ip6 daddr {BOX6} udp dport {allow_udp} accept;\n'
        '  iifname "eth0" drop; }\n'
        "}\n"
    )
    lab.run("router", ["nft", "-f", "-"], input=rules)


def box_ipv6_route(lab: Lab) -> None:
    """The box's IPv6 default route (the config has no IPv6 gateway yet): after its first apply."""
    lab.run(
        "box", ["ip", "-6", "route", "replace", "default", "via", ROUTER6_IN.split("/")[0], "dev", "wan0"]
    )


def mgmt_section(hub: Hub) -> dict:
    return {"enabled": True, "hub_endpoint": hub.endpoint, "hub_public_key": hub.public_key, "network": HUB_NET,
            "address": BOX_LINK, "hub_addresses": [hub.address]}  # fmt: skip


def make_probe_keys(directory: Path) -> dict[str, str]:
    """The hub's three probe keys (fleet/relay/probe make-keys) -> the clinic's `vpn.probe` section."""
    out = subprocess.run([sys.executable, str(PROBE), "make-keys", str(directory)], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines()[2:])}


def hub_relay(box: Box, hub: Hub, listen_port: int) -> str:
    """The box as the hub's peer, forwarding on, and the relay rules exactly as `mamori mgmt hub-relay-rules`
    renders them. Returns the rules."""
    lab = box.lab
    status = json.loads(box.mamori("mgmt", "status", "--json", check=False).stdout)
    hub.add_peer(status["box_public_key"], [f"{BOX_LINK}/32"])
    lab.run(hub.key, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    rules = box.mamori("mgmt", "hub-relay-rules", "--hub-address", hub.address, "--wg-interface", hub.ifname,
                       "--clinic", f"{RELAY_PORT}={BOX_LINK}:{listen_port}").stdout  # fmt: skip
    lab.run(hub.key, ["nft", "-f", "-"], input=rules)
    return rules


def box_vpn_key(box: Box) -> str:
    private = (box.state_dir / "keys" / "wg-server.key").read_text().strip()
    return subprocess.run(["wg", "pubkey"], input=private + "\n", check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def probe_round(lab: Lab, hub: Hub, keys: Path, box_key: str, port: int, ipv6: bool = False) -> dict:
    """One probe round from the hub, as the vendor's timer runs it: IPv4 (the clinic's public address), IPv6
    (the box's address, if the line has it), then the management link. The prober's JSON."""
    argv = [sys.executable, str(PROBE), "run", "--keys", str(keys), "--box-key", box_key, "--timeout", "4",
            "--ifname", lab.wg_name("p"), "--ipv4", f"{PUBLIC4}:{port}", "--link", f"{BOX_LINK}:{port}"]  # fmt: skip
    if ipv6:
        argv += ["--ipv6", f"[{BOX6}]:{port}"]
    return json.loads(lab.run(hub.key, argv, timeout=60).stdout)


def wait_link(box: Box, hub: Hub, timeout: float = 40) -> bool:
    status = json.loads(box.mamori("mgmt", "status", "--json", check=False).stdout)
    return wait_for(lambda: hub.latest_handshake(status["box_public_key"]) > 0, timeout, step=0.3)
