"""Firewall benchmarks (issue 3 targets): whole apply with 0/10k/100k blocked, one block on a 100k set,
and forwarded TCP throughput with 100k blocked addresses relative to none.

Everything runs in throwaway network namespaces created here (client -- box -- server over veth) and
removed at the end; the measured code runs in a child process that joined the box namespace.
"""

from __future__ import annotations

import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.test_firewall_helpers import in_ns, netns, sh, state_ctx  # noqa: E402

SIZES = (0, 10_000, 100_000)


def _addresses(n: int) -> list[str]:
    base = int(ipaddress.ip_address("100.64.0.0"))
    return [str(ipaddress.ip_address(base + i)) for i in range(n)]


def _fill(n: int) -> None:
    """In the box: put n timed addresses into blocked4 (as the IDS would over a day), in chunks."""
    from firewall.nft import run_batch

    addrs = _addresses(n)
    for i in range(0, n, 20_000):
        elems = [{"elem": {"val": a, "timeout": 86400}} for a in addrs[i : i + 20_000]]
        run_batch({"nftables": [{"add": {"element": {"family": "inet", "table": "mamori", "name": "blocked4",
                                                     "elem": elems}}}]}, validate=False)  # fmt: skip


def _apply_seconds(state: str, n: int) -> tuple[float, int]:
    """In the box: fill the set with n addresses, then time a whole re-apply (which re-seeds them)."""
    from bench.bench_firewall import _cfg
    from firewall.subsystem import FirewallSubsystem

    sub = FirewallSubsystem(state_ctx(state))
    rendered = sub.render(_cfg())
    sub.apply(rendered)
    _fill(n)
    start = time.perf_counter()
    sub.apply(rendered)
    took = time.perf_counter() - start
    from firewall.apply import live_dynamic_elements

    kept = len(live_dynamic_elements().get("blocked4", ("", []))[1])
    return took, kept


def _one_block_ms(state: str, runs: int = 300) -> tuple[list[float], list[float]]:
    """In the box, with 100k blocked: kernel-only add of one address, and the full block() with SQLite."""
    from bench.bench_firewall import _cfg
    from firewall.sets import FirewallSets

    sets = FirewallSets(state_ctx(state), _cfg())
    kernel, full = [], []
    for i in range(runs):
        ip = f"198.18.{i // 250}.{i % 250 + 1}"
        start = time.perf_counter()
        sets._add("blocked4", ip, 3600)
        kernel.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        sets.block(f"198.19.{i // 250}.{i % 250 + 1}", 3600, "bench", "bench")
        full.append((time.perf_counter() - start) * 1000)
    return kernel, full


def _cfg():
    import yaml

    from appliance.config.model import MamoriConfig

    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    return MamoriConfig.model_validate(data)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _wire(box: str, client: str, server: str) -> None:
    """client 192.168.10.50 -- lan0 [box] wan0 -- server 203.0.113.10 (lab addresses only)."""
    for peer, ifname, box_addr, peer_addr in ((client, "lan0", "192.168.10.1/24", "192.168.10.50/24"),
                                              (server, "wan0", "203.0.113.2/24", "203.0.113.10/24")):  # fmt: skip
        subprocess.run(["ip", "link", "add", ifname, "netns", box, "type", "veth", "peer", "name", "eth0",
                        "netns", peer], check=True)  # fmt: skip
        sh(box, "ip", "addr", "add", box_addr, "dev", ifname)
        sh(box, "ip", "link", "set", ifname, "up")
        sh(peer, "ip", "addr", "add", peer_addr, "dev", "eth0")
        sh(peer, "ip", "link", "set", "eth0", "up")
        sh(peer, "ip", "route", "add", "default", "via", box_addr.split("/")[0])
    sh(box, "sysctl", "-qw", "net.ipv4.ip_forward=1")


def _iperf(client: str, server: str, seconds: int = 2) -> float:
    proc = subprocess.Popen(["ip", "netns", "exec", server, "iperf3", "-s", "-1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.5)
        out = sh(
            client, "iperf3", "-c", "203.0.113.10", "-t", str(seconds), "-J", timeout=seconds + 30
        ).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def run() -> list[tuple[str, str, str]]:
    import tempfile

    results: list[tuple[str, str, str]] = []
    with (
        tempfile.TemporaryDirectory() as state,
        netns("b") as box,
        netns("c") as client,
        netns("s") as server,
    ):
        _wire(box, client, server)
        for n in SIZES:
            took, kept = in_ns(box, _apply_seconds, state, n, timeout=300)
            results.append((f"firewall apply with {n} blocked (kept {kept})", f"{took:.3f} s", "<= 1 s"))
        kernel, full = in_ns(box, _one_block_ms, state, timeout=300)
        results.append(
            ("firewall block one address on 100k set, median", f"{statistics.median(kernel):.2f} ms", "-")
        )
        results.append(
            ("firewall block one address on 100k set, p99", f"{_pct(kernel, 0.99):.2f} ms", "<= 5 ms")
        )
        results.append(("firewall block() incl. SQLite reason, p99", f"{_pct(full, 0.99):.2f} ms", "-"))
        # alternate with/without (3 rounds each, medians): the machine is shared and noisy
        with_runs, without_runs = [], []
        for _round in range(3):
            in_ns(box, _fill, 100_000, timeout=300)
            with_runs.append(_iperf(client, server))
            sh(box, "nft", "flush", "set", "inet", "mamori", "blocked4")
            without_runs.append(_iperf(client, server))
        with_100k, without = statistics.median(with_runs), statistics.median(without_runs)
        ratio = with_100k / without if without else 0.0
        results.append(("firewall forwarded TCP with 100k blocked / none", f"{ratio:.3f} ({with_100k / 1e9:.2f}/{without / 1e9:.2f} Gbit/s)", ">= 0.97"))  # fmt: skip
    return results


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    for metric, value, target in run():
        print(f"{metric:<60} {value:>28}  target {target}")
