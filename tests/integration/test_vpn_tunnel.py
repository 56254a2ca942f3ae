"""Real WireGuard tunnels (wireguard-go) in the lab: the doctor's home PC on the internet side connects
to the box; a revoked device can no longer handshake; peers come and go without disturbing others."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from appliance.config.load import parse_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.topology import Lab
from lab.waiting import wait_for
from vpn.client import parse_client_conf, up_client
from vpn.keys import generate_keypair
from vpn.provision import provision, sync_peers
from vpn.store import DeviceStore
from vpn.subsystem import VpnSubsystem
from vpn.wg import WgInterface

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"
PID = os.getpid()


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """The lab with the box's wan address set by hand (this test needs the tunnel, not the whole box)."""
    tmp = tmp_path_factory.mktemp("vpn")
    lab = Lab(f"vt{PID}")
    try:
        lab.up()
        lab.run("box", ["ip", "addr", "add", "203.0.113.2/24", "dev", "wan0"])
        lab.run("box", ["ip", "route", "add", "default", "via", "203.0.113.1"])
        ctx = Context(
            Paths(config=tmp / "config.yaml", state_dir=tmp / "state"), Database(tmp / "state" / "m.db")
        )
        ctx.paths.ensure()
        ctx.db.migrate()
        cfg = parse_config(EXAMPLE.read_text(encoding="utf-8")).model
        sub = VpnSubsystem(ctx, ifname=f"wgb{PID}", netns=lab.ns("box"))
        plan = sub.render(cfg)
        sub.check(plan)
        sub.apply(plan)
        sub.verify(plan)
        sub.iface = sub.interface(plan)
        yield lab, ctx, cfg, sub, tmp
    finally:
        try:
            for key, name in (("box", f"wgb{PID}"), ("doctor", f"wgd{PID}")):
                WgInterface(
                    name, run_dir=(tmp / "state" / "run") if key == "box" else tmp, netns=lab.ns(key)
                ).delete()
        finally:
            lab.down()


def connect_doctor(lab: Lab, ctx: Context, cfg, sub: VpnSubsystem, tmp: Path, device: str):
    prov = provision(ctx, cfg, "yamada", device, iface=sub.iface)
    client = up_client(parse_client_conf(prov.conf), f"wgd{PID}", tmp, netns=lab.ns("doctor"))
    return prov, client


@pytest.fixture(scope="module")
def doctor(rig):
    """The doctor's home PC connected through the tunnel, made once for the module: each test may run alone."""
    lab, ctx, cfg, sub, tmp = rig
    prov, _client = connect_doctor(lab, ctx, cfg, sub, tmp, "home-pc")
    assert wait_for(lambda: lab.ping("doctor", "10.99.0.1"), 10), "no ping through the tunnel"
    return prov


def answered_seqs(out: str) -> list[int]:
    """The icmp_seq of every echo reply ping printed, in order (duplicates are marked DUP! and left out)."""
    return [int(m.group(1)) for m in re.finditer(r"icmp_seq=(\d+) .*", out) if "DUP!" not in m.group(0)]


def test_answered_seqs_show_a_gap_and_ignore_the_packet_in_flight():
    out = "\n".join(f"64 bytes from 10.99.0.1: icmp_seq={n} ttl=64 time=0.3 ms" for n in (1, 2, 4))
    out += (
        "\n64 bytes from 10.99.0.1: icmp_seq=4 ttl=64 time=0.3 ms (DUP!)\n--- 10.99.0.1 ping statistics ---\n"
    )
    out += "5 packets transmitted, 3 received, +1 duplicates, 40% packet loss, time 41ms\n"
    assert answered_seqs(out) == [1, 2, 4]


def test_doctor_connects_and_pings_box(rig, doctor):
    lab, _, _, sub, _ = rig
    prov = doctor
    assert prov.device.ip4 == "10.99.0.2"
    assert lab.ping("doctor", "10.99.0.1"), "no ping through the tunnel"
    assert lab.ping("doctor", "fd4d:616d:6f72::1")
    server_peer = sub.iface.dump().peers[prov.device.public_key]
    assert server_peer.latest_handshake > 0 and server_peer.endpoint.startswith("198.51.100.20:")
    assert server_peer.rx > 0 and server_peer.tx > 0
    # the QR code carries the same config
    assert prov.qr_svg().startswith("<svg") and prov.qr_png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adding_and_removing_peers_never_disturbs_another(rig, doctor):
    """Every echo request sent while peers churn is answered: the replies' icmp_seq run 1, 2, 3 ... without a
    gap. (Comparing ping's totals after SIGINT counted the request still in flight at the signal as lost.)"""
    lab, ctx, cfg, sub, _ = rig
    assert wait_for(lambda: lab.ping("doctor", "10.99.0.1"), 10)
    ifindex = sub.iface.run(["cat", f"/sys/class/net/{sub.iface.name}/ifindex"]).stdout
    ping = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("doctor"), "ping", "-n", "-i", "0.01", "-W", "1", "-w", "60", "-c", "100000",
         "10.99.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        store = DeviceStore(ctx.db)
        for i in range(20):  # the product path: store + in-place reconcile, one device at a time
            provision(ctx, cfg, "yamada", f"churn{i}", public_key=generate_keypair()[1], iface=sub.iface)
        for dev in store.active("yamada"):
            if dev.device.startswith("churn"):
                store.revoke(dev.id)
                sync_peers(ctx, cfg, sub.iface)
        # and the 250, added one by one and then removed one by one, through the same in-place
        # reconcile (bench/bench_vpn.py times it)
        want = {d.public_key: tuple(sub.iface.dump().peers[d.public_key].allowed_ips) for d in store.active()}
        keys = [base64.b64encode(os.urandom(32)).decode() for _ in range(250)]
        for i, key in enumerate(keys):
            want[key] = (f"10.99.{1 + i // 200}.{i % 200 + 1}/32",)
            sub.iface.set_peers(dict(want))
        assert len(sub.iface.dump().peers) == 251
        for key in keys:
            del want[key]
            sub.iface.set_peers(dict(want))
        # the tunnel answers after the churn, so the running ping's requests sent from now on are answered
        # too: a request lost during the churn shows as a gap before them, never as a missing tail
        assert lab.ping("doctor", "10.99.0.1"), "the tunnel no longer answers after the churn"
        time.sleep(0.3)
    finally:
        ping.send_signal(2)  # SIGINT: ping prints its summary
        out, _ = ping.communicate(timeout=10)
    seqs = answered_seqs(out)
    assert len(seqs) > 50 and seqs == list(range(1, len(seqs) + 1)), out[-300:]
    assert sub.iface.run(["cat", f"/sys/class/net/{sub.iface.name}/ifindex"]).stdout == ifindex
    assert len(sub.iface.dump().peers) == 1


def test_revoked_device_can_no_longer_handshake(rig, doctor):
    lab, ctx, cfg, sub, _ = rig
    store = DeviceStore(ctx.db)
    dev = store.active("yamada")[0]
    assert wait_for(lambda: lab.ping("doctor", "10.99.0.1"), 10)
    store.revoke(dev.id)
    diff = sync_peers(ctx, cfg, sub.iface)
    assert diff is not None and diff.remove == [dev.public_key]
    assert dev.public_key not in sub.iface.dump().peers
    # forget the client's session so that it must handshake again
    client = f"wgd{PID}"
    conf = lab.run("doctor", ["wg", "showconf", client]).stdout
    server_key = re.search(r"\[Peer\]\s*PublicKey = (\S+)", conf).group(1)
    lab.run("doctor", ["wg", "set", client, "peer", server_key, "remove"])
    lab.run("doctor", ["wg", "set", client, "peer", server_key, "endpoint", "203.0.113.2:51820",
                       "allowed-ips", "10.99.0.0/24,fd4d:616d:6f72::/64"])  # fmt: skip
    assert not lab.ping("doctor", "10.99.0.1", count=3, wait=1)
    hs = lab.run("doctor", ["wg", "show", client, "latest-handshakes"]).stdout.split()
    assert hs == [server_key, "0"]
