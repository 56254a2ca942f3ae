"""VPN relay benchmark (issue 17): latency and throughput of a doctor's tunnel on the direct path against the
path through the vendor's hub (DNAT/SNAT in nftables into the box's WireGuard management link), in one run.

The lab's clinic (lab/topology.py: its router routes, so the box's wan port is reachable directly) with a
hub (Lab.add_hub) running exactly the rules `mamori mgmt hub-relay-rules` renders. The box side is the real
VPN and management-link subsystems (no daemon, no firewall: the tunnel is what is measured). The doctor's
.conf is rendered by vpn.render.client_conf for each path in turn and brought up at home; ping (200 at 20 ms)
and iperf3 (3 s, to the box's tunnel address) measure each. wireguard-go everywhere: a real box with the
kernel module is faster; the ratio relay / direct is what this reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from appliance.config.load import parse_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.box import EXAMPLE_CONFIG
from lab.lines import BOX_LINK, RELAY_PORT, mgmt_section
from lab.topology import Lab
from mgmt.relay import RelayClinic, render_hub_rules
from mgmt.subsystem import MgmtSubsystem
from vpn.client import parse_client_conf, up_client
from vpn.keys import ensure_server_key, generate_keypair
from vpn.render import client_conf
from vpn.store import DeviceStore
from vpn.subsystem import VpnSubsystem
from vpn.wg import WgInterface

PINGS = 200


def _ping(lab: Lab) -> tuple[float, int]:
    out = lab.run("doctor", ["ping", "-n", "-q", "-c", str(PINGS), "-i", "0.02", "-W", "1", "10.99.0.1"],
                  check=False, timeout=60).stdout  # fmt: skip
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    lost = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if not rtt or not lost:
        raise RuntimeError(f"no ping summary: {out[-200:]}")
    return float(rtt.group(1)), int(lost.group(1)) - int(lost.group(2))


def _iperf(lab: Lab) -> float:
    srv = lab.spawn("box", ["iperf3", "-s", "-1", "-B", "10.99.0.1"])
    try:
        time.sleep(0.5)
        res = lab.run("doctor", ["iperf3", "-c", "10.99.0.1", "-t", "3", "-J"], timeout=40)
        return float(json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"])
    finally:
        lab.stop(srv)


def _leg(lab: Lab, cfg, dev, server_pub: str, private: str, path: str, tmp: Path) -> tuple[float, int, float]:
    conf = parse_client_conf(client_conf(cfg, dev, server_pub, private, path=path))
    client = up_client(conf, lab.wg_name("d"), tmp, netns=lab.ns("doctor"))
    try:
        deadline = time.monotonic() + 20
        while not lab.ping("doctor", "10.99.0.1"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {path} tunnel did not come up")
        rtt, lost = _ping(lab)
        return rtt, lost, _iperf(lab)
    finally:
        client.delete()


def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="mamori-bench-relay-") as tmpdir:
        tmp = Path(tmpdir)
        lab = Lab(f"rb{os.getpid() % 100000}")
        box_ifs: list[WgInterface] = []
        try:
            lab.up()
            lab.run("box", ["ip", "addr", "add", "203.0.113.2/24", "dev", "wan0"])
            lab.run("box", ["ip", "route", "add", "default", "via", "203.0.113.1"])
            hub = lab.add_hub()
            data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
            data["vpn"].update(
                interface=lab.wg_name(), path="auto", relay_endpoint=f"198.51.100.77:{RELAY_PORT}"
            )
            data["mgmt"] = {**mgmt_section(hub), "interface": lab.wg_name("m")}
            cfg = parse_config(yaml.safe_dump(data, allow_unicode=True)).model
            ctx = Context(
                Paths(config=tmp / "c.yaml", state_dir=tmp / "state"), Database(tmp / "state" / "m.db")
            )
            ctx.paths.ensure()
            ctx.db.migrate()
            private, public = generate_keypair()
            dev = DeviceStore(ctx.db).add("yamada", "bench", public, cfg.vpn.address, cfg.vpn.address6, True)
            for sub in (VpnSubsystem(ctx, netns=lab.ns("box")), MgmtSubsystem(ctx, netns=lab.ns("box"))):
                plan = sub.render(cfg)
                sub.check(plan)
                sub.apply(plan)
                box_ifs.append(sub.interface(plan))
            link_pub = subprocess.run(["wg", "pubkey"], input=(ctx.paths.keys_dir / "mgmt-link.key").read_text(),
                                      capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
            hub.add_peer(link_pub, [f"{BOX_LINK}/32"])
            lab.run(hub.key, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            rules = render_hub_rules(
                [RelayClinic(RELAY_PORT, BOX_LINK, cfg.vpn.listen_port)], hub.address, hub.ifname
            )
            lab.run(hub.key, ["nft", "-f", "-"], input=rules)
            _, server_pub = ensure_server_key(ctx.paths.keys_dir)
            direct = _leg(lab, cfg, dev, server_pub, private, "direct", tmp)
            relay = _leg(lab, cfg, dev, server_pub, private, "relay", tmp)
        finally:
            for iface in box_ifs:
                iface.delete()
            lab.down()
    return [
        ("ping through the tunnel, direct / relay (avg)", f"{direct[0]:.2f} / {relay[0]:.2f} ms",
         f"relay adds {relay[0] - direct[0]:.2f} ms (information); lost {direct[1]} / {relay[1]} of {PINGS}"),
        ("tunnel throughput (iperf3, wireguard-go), direct / relay",
         f"{direct[2] / 1e6:.0f} / {relay[2] / 1e6:.0f} Mbit/s", f"ratio {relay[2] / direct[2]:.2f} (information)"),
    ]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
