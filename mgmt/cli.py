"""`mamori mgmt`: the vendor hub's management link from the box's shell.

status [--json]   on/off, up/down (latest handshake), the hub's endpoint and key fingerprint, the box's
                  public key (the vendor adds it to the hub), what the hub did. Exit 1 when on but down.
enrol CODE        decode a vendor's code, show the hub and its fingerprint, ask, then apply it.
cut               「保守業者の管理接続を切る」: the interface down at once, then `mgmt.enabled: false`.
make-code ...     the vendor side: an enrolment code for one clinic (validated like the box will).
hub-relay-rules   the vendor side: the hub's nftables rules of the doctors' VPN relay (mgmt/relay.py).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from appliance.actor import cli_actor
from appliance.clock import show
from appliance.lang import print_status
from appliance.service import ConfigService
from appliance.subsystem import Context
from mgmt import actions
from mgmt.code import decode_code, make_code
from mgmt.status import LinkState, link_state


def _lines(s: LinkState, lang: str, tz: str | None) -> list[str]:
    en = lang == "en"
    if not s.enabled:
        out = [
            "management link: off" if en else "保守業者の管理接続: 無効（保守業者はこの機器に接続できません）"
        ]
        if s.exists:
            out.append(
                f"but {s.interface} still exists"
                if en
                else f"ただしインターフェース {s.interface} が残っています"
            )
        return out
    state = ("up" if s.up else "DOWN") if en else ("つながっています" if s.up else "つながっていません")
    out = [
        f"management link: on, {state}" if en else f"保守業者の管理接続: 有効、{state}",
        f"hub: {s.hub_endpoint}  key fingerprint: {s.hub_fingerprint}" if en else
        f"保守業者の接続先: {s.hub_endpoint}  鍵の指紋: {s.hub_fingerprint}",
        f"box tunnel address: {s.address}  hub: {', '.join(s.hub_addresses)}" if en else
        f"本機のアドレス: {s.address}  保守業者側: {', '.join(s.hub_addresses)}",
        (f"last handshake: {show(s.latest_handshake, tz, '%Y-%m-%d %H:%M:%S', 'never')}" if en else
         f"最後に接続を確認した時刻: {show(s.latest_handshake, tz, '%Y-%m-%d %H:%M:%S', 'まだありません')}"),
        (f"box public key (give it to the vendor): {s.box_public_key or '(made at the first apply)'}" if en else
         f"本機の公開鍵（保守業者に伝えてください）: {s.box_public_key or '（最初の適用で作られます）'}"),
    ]  # fmt: skip
    if s.activity:
        out.append("what the hub did:" if en else "保守業者の操作:")
        for a in s.activity:
            out.append(
                f"  {show(a['ts'], tz, '%Y-%m-%d %H:%M:%S')}  {a['actor']}  {a['action']}  ({a['remote']})"
            )
    return out


def _zone(ctx: Context) -> str | None:
    from appliance.config.load import parse_config

    rev = ConfigService(ctx, subsystems=()).current()
    return parse_config(rev.config_text).model.clinic.timezone if rev else None


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    s = link_state(ctx)
    print_status(args, asdict(s), lambda: _lines(s, args.lang, _zone(ctx)))
    return 1 if s.enabled and not s.up else 0


def cmd_enrol(args: argparse.Namespace, ctx: Context) -> int:
    enrolment = decode_code(args.code)
    en = args.lang == "en"
    print(f"hub: {enrolment.hub_endpoint}" if en else f"保守業者の接続先: {enrolment.hub_endpoint}")
    print(
        f"hub key fingerprint: {enrolment.fingerprint}"
        if en
        else f"保守業者の鍵の指紋: {enrolment.fingerprint}"
    )
    print(f"box tunnel address: {enrolment.address}" if en else f"本機のアドレス: {enrolment.address}")
    if not args.yes:
        prompt = "Does the vendor read the same fingerprint? [yes/no] " if en else \
            "保守業者が電話で読み上げた指紋と一致しますか？ [yes/no] "  # fmt: skip
        print(prompt, end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("yes", "y", "はい"):
            print("not enrolled" if en else "登録しませんでした")
            return 1
    text = actions.enrolled_text(actions.live_text(ctx), enrolment)
    comment = f"保守業者の管理接続を登録する（{enrolment.hub_endpoint}、指紋 {enrolment.fingerprint}）"
    rev = ConfigService(ctx).apply(text, cli_actor(args), "cli", comment)
    s = link_state(ctx)
    print(f"applied revision {rev.id}" if en else f"リビジョン {rev.id} を反映しました")
    print(f"box public key (give it to the vendor): {s.box_public_key}" if en else
           f"本機の公開鍵（保守業者に伝えてください）: {s.box_public_key}")  # fmt: skip
    return 0


def cmd_cut(args: argparse.Namespace, ctx: Context) -> int:
    rev = actions.cut(ctx, cli_actor(args), "cli")
    en = args.lang == "en"
    print("management link cut" if en else "保守業者の管理接続を切りました")
    if rev is not None:
        print(f"applied revision {rev.id}" if en else f"リビジョン {rev.id} を反映しました")
    return 0


def cmd_make_code(args: argparse.Namespace, ctx: Context) -> int:
    code = make_code(args.endpoint, args.hub_key, args.network, args.address, args.hub_address)
    print(code)
    if args.qr:
        import segno

        # Upper case, digits and "-" only: the QR's alphanumeric mode; a reader gives back the same text.
        segno.make(code, error="m").save(args.qr, kind="svg", scale=5)
    return 0


def cmd_hub_relay_rules(args: argparse.Namespace, ctx: Context) -> int:
    from mgmt.relay import parse_clinic, render_hub_rules

    print(
        render_hub_rules([parse_clinic(c) for c in args.clinic], args.hub_address, args.wg_interface), end=""
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    mgmt = sub.add_parser(
        "mgmt", help="保守業者の管理接続 / the vendor hub's management link"
    ).add_subparsers(dest="mgmt_cmd", required=True)
    p = mgmt.add_parser("status", help="状態 / state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = mgmt.add_parser("enrol", help="登録コードで接続する / enrol from a vendor's code")
    p.add_argument("code")
    p.add_argument("--yes", action="store_true", help="指紋を確認済み / the fingerprint was compared")
    p.set_defaults(func=cmd_enrol)
    p = mgmt.add_parser("cut", help="保守業者の管理接続を切る / cut the link now")
    p.set_defaults(func=cmd_cut)
    p = mgmt.add_parser("make-code", help="（保守業者用）登録コードを作る / (vendor) make an enrolment code")
    p.add_argument("--endpoint", required=True, help="hub.example.jp:51820")
    p.add_argument("--hub-key", required=True, help="the hub's WireGuard public key")
    p.add_argument("--network", required=True, help="the hub's tunnel network, e.g. 10.77.0.0/16")
    p.add_argument("--address", required=True, help="this clinic's box address in it, e.g. 10.77.0.17")
    p.add_argument(
        "--hub-address", action="append", required=True, help="the hub's tunnel address (repeatable)"
    )
    p.add_argument("--qr", metavar="FILE.svg", help="the same code as a QR code (SVG)")
    p.set_defaults(func=cmd_make_code)
    p = mgmt.add_parser(
        "hub-relay-rules", help="（保守業者用）VPN 中継の nftables 規則 / (vendor) hub relay rules"
    )
    p.add_argument("--hub-address", required=True, help="the hub's tunnel address, e.g. 10.77.0.1")
    p.add_argument("--wg-interface", default="wg-hub", help="the hub's WireGuard interface (wg-hub)")
    p.add_argument("--clinic", action="append", required=True, metavar="HUBPORT=BOX[:PORT]",
                   help="e.g. 40017=10.77.0.17:51820 (repeatable)")  # fmt: skip
    p.set_defaults(func=cmd_hub_relay_rules)
