"""VPN benchmark: peer changes with 250 peers present, pings lost meanwhile, tunnel throughput.

Two throwaway namespaces joined by a veth pair; a wireguard-go server in one, a client in the other
(the kernel module on a real box is faster; the ratios are what matter here). Peers are added and
removed one by one through `WgInterface.set_peers`, the same reconcile path the product uses (dump,
diff, one `wg set`), while the client pings the server's tunnel address every 10 ms. Everything it
creates is removed at the end; traffic stays between its own namespaces.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vpn.keys import ensure_server_key, generate_keypair
from vpn.wg import WgInterface

PEERS = 250
T = TypeVar("T")
TARGET_MS = 100.0


def _sh(ns: str, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check,
                          timeout=timeout)  # fmt: skip


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


class Rig:
    """Server and client namespaces, a veth between them (10.250.0.0/24), a tunnel (10.98.0.0/22)."""

    def __init__(self, tmp: Path) -> None:
        pid = os.getpid()
        self.tmp = tmp
        self.srv_ns, self.cli_ns = f"vpb{pid}s", f"vpb{pid}c"
        self.server = WgInterface(f"wbs{pid}", run_dir=tmp, netns=self.srv_ns)
        self.client = WgInterface(f"wbc{pid}", run_dir=tmp, netns=self.cli_ns)
        self.client_key = ""

    def up(self) -> None:
        for ns in (self.srv_ns, self.cli_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            _sh(ns, "ip", "link", "set", "lo", "up")
        subprocess.run(["ip", "link", "add", "vb0", "netns", self.srv_ns, "type", "veth", "peer", "name", "vb1",
                        "netns", self.cli_ns], check=True)  # fmt: skip
        for ns, ifname, addr in (
            (self.srv_ns, "vb0", "10.250.0.1/24"),
            (self.cli_ns, "vb1", "10.250.0.2/24"),
        ):
            _sh(ns, "ip", "addr", "add", addr, "dev", ifname)
            _sh(ns, "ip", "link", "set", ifname, "up")
        key_path, server_pub = ensure_server_key(self.tmp / "keys")
        self.server.create()
        self.server.configure("10.98.0.1/22", None, 51820, key_path)
        client_priv, self.client_key = generate_keypair()
        (self.tmp / "client.key").write_text(client_priv + "\n")
        os.chmod(self.tmp / "client.key", 0o600)
        self.client.create()
        self.client.run(["ip", "addr", "add", "10.98.0.2/32", "dev", self.client.name])
        self.client.run(["wg", "set", self.client.name, "private-key", str(self.tmp / "client.key"), "peer", server_pub,
                         "endpoint", "10.250.0.1:51820", "allowed-ips", "10.98.0.0/22", "persistent-keepalive", "25"])  # fmt: skip
        self.client.run(["ip", "link", "set", self.client.name, "up"])
        self.client.run(["ip", "route", "replace", "10.98.0.0/22", "dev", self.client.name])
        self.server.set_peers(self.base())
        deadline = time.monotonic() + 10
        while _sh(self.cli_ns, "ping", "-c1", "-W1", "10.98.0.1", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark tunnel did not come up")

    def base(self) -> dict[str, tuple[str, ...]]:
        return {self.client_key: ("10.98.0.2/32",)}

    def down(self) -> None:
        for iface in (self.server, self.client):
            try:
                iface.delete()
            except (OSError, subprocess.SubprocessError):
                pass
        for ns in (self.srv_ns, self.cli_ns):
            for pid in subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True
            ).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _churn(rig: Rig) -> tuple[list[float], list[float]]:
    want = rig.base()
    keys = [base64.b64encode(os.urandom(32)).decode() for _ in range(PEERS)]
    adds, removes = [], []
    for i, key in enumerate(keys):
        want[key] = (f"10.98.{1 + (i + 3) // 256}.{(i + 3) % 256}/32",)
        t = time.perf_counter()
        rig.server.set_peers(dict(want))
        adds.append((time.perf_counter() - t) * 1000)
    for key in keys:
        del want[key]
        t = time.perf_counter()
        rig.server.set_peers(dict(want))
        removes.append((time.perf_counter() - t) * 1000)
    return adds, removes


def _ping_during(rig: Rig, work: Callable[[Rig], T]) -> tuple[T, int, int]:
    ping = subprocess.Popen(["ip", "netns", "exec", rig.cli_ns, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
                             "-w", "600", "10.98.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        time.sleep(0.2)
        result = work(rig)
        time.sleep(1.2)  # replies to the last requests may still be on their way
    finally:
        ping.send_signal(signal.SIGINT)
        out, _ = ping.communicate(timeout=15)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if not m:
        raise RuntimeError(f"no ping summary: {out[-200:]}")
    return result, int(m.group(1)), int(m.group(2))


def _iperf(rig: Rig, server_ip: str) -> float:
    srv = subprocess.Popen(["ip", "netns", "exec", rig.srv_ns, "iperf3", "-s", "-1", "-B", server_ip],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.5)
        res = _sh(rig.cli_ns, "iperf3", "-c", server_ip, "-t", "3", "-J", timeout=30)
        return float(json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"])
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(5)


def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="mamori-bench-vpn-") as tmp:
        rig = Rig(Path(tmp))
        try:
            rig.up()
            (adds, removes), sent, received = _ping_during(rig, _churn)
            plain = _iperf(rig, "10.250.0.1")
            tunnel = _iperf(rig, "10.98.0.1")
        finally:
            rig.down()
    ok = "ok" if max(_p99(adds), _p99(removes)) <= TARGET_MS else "SLOW"
    return [
        (f"add one peer ({PEERS} present) median / p99", f"{statistics.median(adds):.1f} / {_p99(adds):.1f} ms",
         f"p99 <= {TARGET_MS:.0f} ms ({ok})"),
        (f"remove one peer ({PEERS} present) median / p99",
         f"{statistics.median(removes):.1f} / {_p99(removes):.1f} ms", f"p99 <= {TARGET_MS:.0f} ms ({ok})"),
        (f"pings lost on another peer during {2 * PEERS} changes (10 ms interval)", f"{sent - received} of {sent}",
         "0"),
        ("tunnel throughput (wireguard-go) vs the same path without tunnel",
         f"{tunnel / 1e6:.0f} / {plain / 1e6:.0f} Mbit/s", f"ratio {tunnel / plain:.2f} (information)"),
    ]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
