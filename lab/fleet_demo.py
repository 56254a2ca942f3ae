"""`make fleet-demo`: a vendor's hub watching 10 clinics (lab/fleet.py), kept running until Ctrl-C.

Prints where to look: Prometheus and Alertmanager listen on the hub namespace's loopback only; this machine
reaches them through loopback forwards (127.0.0.1:19090 and :19093 here, lab.forward inside the hub
namespace) or `ip netns exec`. On exit every namespace, interface and process it made is removed, by PID.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from lab.fleet import Fleet
from lab.fleet_hub import ALERTMANAGER_PORT, PROMETHEUS_PORT
from lab.forward import open_forward
from lab.running import hold, need_root


def print_summary(fleet: Fleet, prom: int | None, am: int | None) -> None:
    hub_ns = fleet.core.ns(fleet.hub.key)
    print("\n=== Mamori 保守業者ハブのデモ / vendor hub demo: running ===")
    print(
        f"ハブ / hub: namespace {hub_ns}, WireGuard {fleet.hub.ifname} {fleet.hub.address}  (work: {fleet.work})"
    )
    for name, local, remote in (
        ("Prometheus", prom, PROMETHEUS_PORT),
        ("Alertmanager", am, ALERTMANAGER_PORT),
    ):
        where = (
            f"http://127.0.0.1:{local}/"
            if local
            else f"(port busy; use: sudo ip netns exec {hub_ns} curl ...)"
        )
        print(f"  {name:<13} {where}   ハブの中では / inside the hub: http://127.0.0.1:{remote}/")
    print(f"  Webhook の受信記録 / what Alertmanager sent: {fleet.engines.webhook_log}")
    print(
        f"  rsyslog（TLS {fleet.hub.address}:{fleet.syslog.port}）が受けたログ / syslog received: {fleet.syslog.received}"
    )
    print("\n医院 / clinics:")
    for c in fleet.clinics:
        ids = "IDS on" if c.ids else "IDS off"
        print(f"  {c.clinic_id} {c.name:<10} box {c.lab.ns('box'):<22} link {c.target:<17} {ids}")
    c = next((c for c in fleet.clinics if c.ids), fleet.clinics[0])
    cli = f"sudo ip netns exec {c.lab.ns('box')} .venv/bin/mamori --config {c.box.config} --state-dir {c.box.state_dir}"
    print("\n試してみる / try:")
    print(f"  sudo ip netns exec {hub_ns} curl -s 'http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?query=up'")
    print(f"  攻撃（SMB の探索）/ an attack: sudo ip netns exec {c.lab.ns('reception')} nmap -n -Pn -sS -p 445 "
          "-T5 192.168.30.1-30")  # fmt: skip
    print("    → 1 分以内に Alertmanager に MamoriAttackDetected / MamoriAttackDetected within a minute")
    print(f"  管理接続を切る / cut the link: {cli} mgmt cut")
    print("\nCtrl-C で終了します（すべて片付けます） / Ctrl-C stops and cleans up everything.\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument(
        "--exit-after", type=float, default=None, help="stop by itself after N seconds (tests)"
    )
    parser.add_argument("--prometheus-port", type=int, default=19090)
    parser.add_argument("--alertmanager-port", type=int, default=19093)
    args = parser.parse_args()
    if not need_root("fleet-demo"):
        return 1
    work = Path(tempfile.mkdtemp(prefix="mamori-fleet-"))
    fleet = Fleet(f"mf{os.getpid()}", work, count=args.boxes, ids_boxes=frozenset({0}))

    def start() -> None:
        print(f"{args.boxes} 台の医院とハブを用意しています… / building the hub and {args.boxes} clinics…",
              flush=True)  # fmt: skip
        t0 = time.monotonic()
        fleet.up()
        print(f"用意できました（{time.monotonic() - t0:.0f} 秒） / ready in {time.monotonic() - t0:.0f} s")
        prom = open_forward(fleet.core, fleet.hub.key, args.prometheus_port, f"127.0.0.1:{PROMETHEUS_PORT}")
        am = open_forward(fleet.core, fleet.hub.key, args.alertmanager_port, f"127.0.0.1:{ALERTMANAGER_PORT}")
        print_summary(fleet, prom, am)

    return hold(start, fleet.down, args.exit_after)


if __name__ == "__main__":
    sys.exit(main())
