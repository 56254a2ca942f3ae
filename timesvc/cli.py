"""`mamori time status`: is the box's clock right, and where does it take the time from.

Exit code 0 when synchronised, 1 when not (a script or a monitoring check can use it). `--json` prints
the state for other tools. Output is Japanese unless --lang en.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from appliance.clockwatch import current_notice
from appliance.lang import english, print_status
from appliance.subsystem import Context
from timesvc.status import ClockState, clock_state, format_offset_ja

_STATE_JA = {"*": "使用中", "+": "併用", "-": "予備", "?": "応答なし", "x": "不正確", "~": "不安定"}


def _lines_en(state: ClockState) -> list[str]:
    if not state.enabled:
        return ["NTP: disabled in the config"]
    if not state.running:
        return [f"NTP: chronyd is not running ({state.problem})"]
    lines = [f"synchronised: {'yes' if state.synchronised else 'no'}"]
    if state.synchronised:
        lines += [f"offset: {state.offset_s:+.6f} s (positive = box clock ahead)", f"stratum: {state.stratum}",
                  f"upstream: {state.upstream}"]  # fmt: skip
    lines += [
        f"source {s.name}: state {s.state} stratum {s.stratum} reach {s.reach:o}" for s in state.sources
    ]
    return lines


def _lines_ja(state: ClockState) -> list[str]:
    lines = [state.summary_ja()]
    if state.enabled and state.running:
        lines.append(f"同期: {'はい' if state.synchronised else 'いいえ'}")
        if state.synchronised:
            lines += [f"ずれ: {format_offset_ja(state.offset_s or 0.0)}", f"階層（stratum）: {state.stratum}",
                      f"上位の時刻サーバー: {state.upstream}"]  # fmt: skip
        lines += [
            f"時刻源 {s.name}: {_STATE_JA.get(s.state, s.state)}（階層 {s.stratum}）" for s in state.sources
        ]
    return lines


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    state = clock_state(ctx)
    ctx.db.migrate()
    notice = current_notice(ctx)  # a step or a late start in the last days (appliance.clockwatch)
    data = {**asdict(state), "notice": asdict(notice) if notice else None}

    def lines() -> list[str]:
        out = _lines_en(state) if english(args) else _lines_ja(state)
        if notice is not None:
            out.append(notice.text_en() if english(args) else notice.text_ja())
        return out

    print_status(args, data, lines)
    return 0 if state.synchronised else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    time_cmd = subparsers.add_parser(
        "time", help="本機の時計と時刻配信 / the box's clock and NTP"
    ).add_subparsers(dest="time_cmd", required=True)
    p = time_cmd.add_parser("status", help="時計の同期状態 / clock synchronisation state")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    p.set_defaults(func=cmd_status)
