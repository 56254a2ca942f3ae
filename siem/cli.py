"""`mamori siem status`: is the box sending its logs to the SIEM, and how much is waiting.

Exit code 0 when on, running and the collector reachable (or off); 1 otherwise, so a monitoring check can
use it. `--json` prints the state for other tools. Output is Japanese unless --lang en.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from appliance.clock import show
from appliance.lang import english, print_status
from appliance.revisions import live_config
from appliance.subsystem import Context
from siem.status import SiemState, siem_state


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def _when(ts: float | None, lang: str) -> str:
    if ts is None:
        return "まだありません" if lang == "ja" else "never"
    return show(ts)


def lines_en(st: SiemState) -> list[str]:
    if not st.enabled:
        return ["SIEM forwarding: disabled in the config"]
    reach = {True: "yes", False: "NO", None: "not checked"}[st.reachable]
    return [
        f"collector: {st.collector} (reachable: {reach})",
        f"rsyslogd: {'running' if st.running else 'NOT running'}",
        f"queued in rsyslogd: {st.queued} messages ({_mb(st.queue_disk_bytes)} on disk)",
        f"spool: {_mb(st.spool_bytes)} ({_mb(st.spool_unread_bytes)} not yet read by rsyslogd)",
        f"sent since rsyslogd started: {st.sent}; last delivery: {_when(st.last_delivered, 'en')}",
        "handed over up to: " + ", ".join(f"{k}-{v}" for k, v in sorted((st.cursors or {}).items())),
    ]


def lines_ja(st: SiemState) -> list[str]:
    if not st.enabled:
        return ["SIEM へのログ送信は設定で無効です"]
    reach = {True: "つながります", False: "つながりません", None: "未確認"}[st.reachable]
    return [
        f"送り先: {st.collector}（{reach}）",
        f"送信プログラム（rsyslogd）: {'動いています' if st.running else '止まっています'}",
        f"送信待ち: {st.queued} 件（ディスク上 {_mb(st.queue_disk_bytes)}）",
        f"受け渡しファイル: {_mb(st.spool_bytes)}（未読 {_mb(st.spool_unread_bytes)}）",
        f"送信済み（起動後）: {st.sent} 件、最後に届けた時刻: {_when(st.last_delivered, 'ja')}",
        "受け渡し済みの記録: " + "、".join(f"{k}-{v}" for k, v in sorted((st.cursors or {}).items())),
    ]


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    cfg = live_config(ctx.db)
    if cfg is None:
        print("設定がまだ反映されていません" if args.lang != "en" else "no config applied yet")
        return 1
    st = siem_state(ctx, cfg)
    print_status(args, asdict(st), lambda: lines_en(st) if english(args) else lines_ja(st))
    healthy = not st.enabled or (st.running and st.reachable is not False)
    return 0 if healthy else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    siem_cmd = subparsers.add_parser(
        "siem", help="SIEM へのログ送信 / sending logs to a SIEM (syslog over TLS)"
    ).add_subparsers(dest="siem_cmd", required=True)
    p = siem_cmd.add_parser("status", help="送信の状態 / forwarding state")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    p.set_defaults(func=cmd_status)
