"""`make demo`: build the lab clinic, run the real Mamori appliance in it, and keep it running until Ctrl-C.

Prints what is running and how to reach the web UI from this machine's loopback; on exit removes every
namespace, interface and process it made.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from lab.box import make_box
from lab.forward import open_forward
from lab.running import hold, need_root
from lab.topology import HOSTS, Lab

WEB_PORT_LOCAL = 8443
LABELS = {
    "server": "インターネット上のサーバー / public server",
    "attacker": "攻撃者 / attacker",
    "doctor": "医師の自宅PC / doctor's home PC",
    "emr": "電子カルテサーバー / EMR server",
    "reception": "受付PC / reception PC",
    "pacs": "PACS（画像サーバー）",
    "phone": "患者さんのスマートフォン（ゲストWi-Fi） / guest phone",
    "xray": "X線装置（医療機器） / legacy X-ray",
}


def print_summary(lab: Lab, state_dir: Path, web_port: int | None, has_web: bool, setup_code: str) -> None:
    print("\n=== Mamori デモ / demo: running ===")
    print(f"box namespace : {lab.ns('box')}   (state: {state_dir})")
    for host in HOSTS:
        print(f"  {host.key:<10} {host.address:<18} ns {lab.ns(host.key):<24} {LABELS[host.key]}")
    cli = f"sudo ip netns exec {lab.ns('box')} .venv/bin/mamori --config {state_dir}/config.yaml --state-dir {state_dir}"
    print("\nTry / 試してみる:")
    print(f"  {cli} config history")
    print(f"  sudo ip netns exec {lab.ns('box')} nft list table inet mamori")
    print(f"  sudo ip netns exec {lab.ns('attacker')} nmap -Pn -p 1-1000 203.0.113.2")
    print(f"  sudo ip netns exec {lab.ns('reception')} ping -c1 198.51.100.10")
    if has_web and web_port:
        print(
            f"\nWeb UI / 管理画面: https://127.0.0.1:{web_port}/  (self-signed certificate / 自己署名証明書)"
        )
        print(f"  {setup_code}  (初期設定の最初に入力します / asked for on the first setup page)")
    elif not has_web:
        print("\nWeb UI: not built into this version yet / 管理画面はこの版ではまだありません")
    else:
        print(f"\nWeb UI: port {WEB_PORT_LOCAL} on 127.0.0.1 is busy; not forwarded")
    print("\nCtrl-C で終了します（すべて片付けます） / Ctrl-C stops and cleans up everything.\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--exit-after", type=float, default=None, help="stop by itself after N seconds (tests)"
    )
    parser.add_argument("--web-port", type=int, default=WEB_PORT_LOCAL)
    args = parser.parse_args()
    if not need_root("demo"):
        return 1
    state_dir = Path(tempfile.mkdtemp(prefix="mamori-demo-"))
    lab = Lab(f"mdemo{os.getpid()}")

    def start() -> None:
        lab.up()
        box = make_box(lab, state_dir)
        print(box.mamori("config", "apply", "-m", "デモの初期設定").stdout.strip())
        box.start_daemon()
        has_web = importlib.util.find_spec("webui.serve") is not None
        web_port = open_forward(lab, "reception", args.web_port, "192.168.10.1:443") if has_web else None
        setup_code = box.mamori("setup-code").stdout.strip()
        print_summary(lab, state_dir, web_port, has_web, setup_code)

    return hold(start, lab.down, args.exit_after)


if __name__ == "__main__":
    sys.exit(main())
