"""`mamori ssh status`: is maintenance SSH on, where does it listen, which keys may log in, is anyone in.

Exit code 0 when the state matches the config (on and sshd running, or off and no sshd), 1 otherwise, so a
monitoring check can use it. `--json` for other tools.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from appliance.lang import print_status
from appliance.subsystem import Context
from sshsvc.status import SshState, ssh_state


def _lines(state: SshState, lang: str) -> list[str]:
    en = lang == "en"
    if not state.enabled:
        lines = ["maintenance SSH: off" if en else "保守用の遠隔ログイン（SSH）: 無効"]
        if state.pid:
            lines.append(
                f"but sshd still runs (pid {state.pid})"
                if en
                else f"ただし sshd が動いています（pid {state.pid}）"
            )
        return lines
    running = f"running (pid {state.pid})" if state.pid else "NOT running"
    lines = [
        f"maintenance SSH: on, sshd {running}" if en else
        f"保守用の遠隔ログイン（SSH）: 有効、sshd は{'動作中（pid ' + str(state.pid) + '）' if state.pid else '止まっています'}",
        ("listening on: " if en else "接続先: ") + ", ".join(f"{a} port 22" for a in state.addresses),
        (f"open sessions: {state.sessions}" if en else f"ログイン中: {state.sessions} 件"),
    ]  # fmt: skip
    for k in state.keys:
        lines.append(f"key {k.fingerprint or '?'} {k.kind} {k.comment}".rstrip() if en else
                     f"公開鍵 {k.fingerprint or '?'} {k.kind} {k.comment}".rstrip())  # fmt: skip
    return lines


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    state = ssh_state(ctx)
    print_status(args, asdict(state), lambda: _lines(state, args.lang))
    return 0 if bool(state.pid) == state.enabled else 1


def register(sub: argparse._SubParsersAction) -> None:
    ssh = sub.add_parser("ssh", help="保守用の遠隔ログイン / maintenance SSH").add_subparsers(
        dest="ssh_cmd", required=True
    )
    p = ssh.add_parser("status", help="状態 / state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
