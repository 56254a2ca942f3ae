"""`mamori vpn ...`: users, devices, maintenance windows and sessions, for the clinic and the vendor.

Every change is recorded in the audit log. Secrets (a box-generated private key, a TOTP secret, a
generated password) are printed exactly once, when they are made, and stored nowhere in clear.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.actor import cli_actor
from appliance.audit import audit_log
from appliance.clock import clinic_time, show, wall
from appliance.config.load import load_config
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError, NotFoundError
from appliance.fileio import atomic_write
from appliance.lang import english, pick, print_status, say
from appliance.revisions import config_in_force
from appliance.revisions import live_config as running_config
from appliance.subsystem import Context
from vpn.credentials import Credentials
from vpn.keys import ensure_server_key
from vpn.model import VpnUser
from vpn.monitor import peer_log
from vpn.provision import Provisioned, provision, revoke_device
from vpn.render import client_conf
from vpn.report import render_text, window_report
from vpn.sessions import END_REASON_JA, SessionManager
from vpn.store import DeviceStore
from vpn.wg import WgInterface
from vpn.windows import WindowStore

ROLE_JA = {"doctor": "医師", "staff": "スタッフ", "vendor": "保守業者"}


def live_config(ctx: Context) -> MamoriConfig:
    """The live revision's config (what the box runs), or the config file before the first apply (a clear
    error when there is neither: these commands need the VPN's users and settings)."""
    ctx.db.migrate()
    return running_config(ctx.db) or load_config(ctx.paths.config).model


def _user(cfg: MamoriConfig, name: str) -> VpnUser:
    user = next((u for u in cfg.vpn.users if u.name == name), None)
    if user is None:
        raise NotFoundError(f"VPN 利用者「{name}」は設定にありません", f"no VPN user '{name}' in the config")
    return user


def _audit(ctx: Context, args: argparse.Namespace, action: str, detail: dict) -> None:
    audit_log(ctx).record(cli_actor(args), action, detail, source="cli")


def _when(cfg: MamoriConfig, ts: float | None) -> str:
    return show(ts, cfg.clinic.timezone, "%Y-%m-%d %H:%M")


def cmd_users(args: argparse.Namespace, ctx: Context) -> int:
    cfg = live_config(ctx)
    creds, store, sessions = Credentials(ctx.db), DeviceStore(ctx.db), SessionManager(ctx, lambda: cfg)
    open_ = {s.user for s in sessions.list(limit=1000) if s.ended is None}
    for u in cfg.vpn.users:
        role = pick(args, ROLE_JA[u.role], u.role)
        state = pick(args, "有効", "enabled") if u.enabled else pick(args, "停止", "disabled")
        cred = pick(args, "設定済み", "set") if creds.exists(u.name) else pick(args, "未設定", "none")
        devs = len(store.active(u.name))
        online = pick(args, " 接続中", " online") if u.name in open_ else ""
        print(f"{u.name:<16} {role:<6} {state:<4} devices={devs} password={cred}{online}  {u.display_name}")
    return 0


def _write_outputs(args: argparse.Namespace, prov: Provisioned) -> None:
    if args.out:
        out = Path(args.out)
        stem = f"{prov.device.user}-{prov.device.device}"
        atomic_write(out / f"{stem}.conf", prov.conf, mode=0o600)
        atomic_write(out / f"{stem}.png", prov.qr_png(), mode=0o600)
        atomic_write(out / f"{stem}.svg", prov.qr_svg(), mode=0o600)
        say(args, f"{out}/{stem}.conf と QR コード（.png/.svg）を書きました。渡したら削除してください",
            f"wrote {out}/{stem}.conf and its QR code (.png/.svg); delete them once handed over")  # fmt: skip
    else:
        print(prov.conf, end="")


def _ensure_credentials(args: argparse.Namespace, ctx: Context, cfg: MamoriConfig, user: str) -> None:
    creds = Credentials(ctx.db)
    if creds.exists(user) and not getattr(args, "reset_password", False):
        return
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else secrets.token_urlsafe(12)
    creds.set(user, password)
    if not args.password_stdin:
        say(args, f"初期パスワード（一度だけ表示）: {password}", f"initial password (shown once): {password}")
    say(args, "認証アプリに登録（一度だけ表示）:", "enrol in the authenticator app (shown once):")
    print(creds.provisioning_uri(user, cfg.clinic.name))
    _audit(ctx, args, "vpn.user.credentials", {"user": user})


def cmd_add(args: argparse.Namespace, ctx: Context) -> int:
    cfg = live_config(ctx)
    _user(cfg, args.user)
    iface = WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)
    prov = provision(ctx, cfg, args.user, args.device, public_key=args.public_key, iface=iface)
    _audit(ctx, args, "vpn.device.add", {"user": args.user, "device": args.device, "ip": prov.device.ip4,
                                         "own_key": args.public_key is not None})  # fmt: skip
    _ensure_credentials(args, ctx, cfg, args.user)
    _write_outputs(args, prov)
    return 0


def cmd_show_config(args: argparse.Namespace, ctx: Context) -> int:
    """A device with its own key: print its config again. A box-made key was shown once: re-issue."""
    cfg = live_config(ctx)
    dev = next((d for d in DeviceStore(ctx.db).active(args.user) if d.device == args.device), None)
    if dev is None:
        raise NotFoundError(
            f"端末「{args.user}/{args.device}」はありません", f"no device {args.user}/{args.device}"
        )
    if dev.box_generated and not args.reissue:
        raise MamoriError(
            "この端末の秘密鍵は発行時に一度だけ表示しました。再発行するには --reissue を付けてください（古い鍵は使えなくなります）",
            "this device's private key was shown once at issue; add --reissue to issue a new one (the old key stops working)",
            code="vpn.shown_once",
        )
    if args.reissue:
        iface = WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)
        prov = provision(ctx, cfg, args.user, args.device, iface=iface)
        _audit(ctx, args, "vpn.device.reissue", {"user": args.user, "device": args.device, "old_ip": dev.ip4})
        _write_outputs(args, prov)
        return 0
    _, server_public = ensure_server_key(ctx.paths.keys_dir)
    from vpn.reach import status as reach_status

    print(client_conf(cfg, dev, server_public, path=reach_status(ctx, cfg).path), end="")
    return 0


def cmd_revoke(args: argparse.Namespace, ctx: Context) -> int:
    cfg = live_config(ctx)
    iface = WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)
    dev = revoke_device(ctx, cfg, args.user, args.device, iface=iface)
    _audit(ctx, args, "vpn.device.revoke", {"user": args.user, "device": args.device, "ip": dev.ip4})
    say(args, f"端末 {args.user}/{args.device} を無効にしました（もう接続できません）",
        f"device {args.user}/{args.device} revoked (it can no longer connect)")  # fmt: skip
    return 0


def cmd_disable(args: argparse.Namespace, ctx: Context) -> int:
    cfg = live_config(ctx)
    _user(cfg, args.user)
    if args.enable:
        creds = Credentials(ctx.db)
        creds.set_disabled(args.user, False)
        creds.unlock(args.user)
        _audit(ctx, args, "vpn.user.enable", {"user": args.user})
        say(args, f"{args.user} を再び使えるようにしました", f"{args.user} enabled again")
        return 0
    ended = SessionManager(ctx, lambda: cfg).disable_user(args.user, cli_actor(args))
    say(args, f"{args.user} を停止し、接続 {len(ended)} 件を切断しました",
        f"{args.user} disabled; {len(ended)} session(s) cut")  # fmt: skip
    return 0


def _parse_time(cfg: MamoriConfig, text: str) -> float:
    """'2026-11-26 14:00' or '14:00' (today), box-local time."""
    zone = ZoneInfo(cfg.clinic.timezone)
    try:
        if len(text) <= 5:
            hh, mm = (int(x) for x in text.split(":"))
            today = clinic_time(tz=cfg.clinic.timezone)  # "today" by the clinic's one clock (appliance.clock)
            return today.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
        return dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()
    except ValueError:
        raise MamoriError(
            f"「{text}」は日時の形式ではありません（例: 2026-11-26 14:00）",
            f"'{text}' is not a date and time (e.g. 2026-11-26 14:00)",
            code="vpn.time",
        ) from None


def cmd_windows(args: argparse.Namespace, ctx: Context) -> int:
    cfg = live_config(ctx)
    store = WindowStore(ctx.db)
    if args.approve:
        user = _user(cfg, args.approve)
        if user.role != "vendor":
            raise MamoriError(
                "時間枠は保守業者のためのものです", "windows are for vendors", code="vpn.window"
            )
        if args.hours:
            w = store.approve_next(
                user.name, args.hours, args.reason or "", args.target or [], cli_actor(args)
            )
        elif args.start and args.end:
            w = store.approve(user.name, _parse_time(cfg, args.start), _parse_time(cfg, args.end), args.reason or "",
                              args.target or [], cli_actor(args))  # fmt: skip
        else:
            raise MamoriError(
                "--hours か --from/--to を指定してください", "give --hours or --from/--to", code="vpn.window"
            )
        _audit(ctx, args, "vpn.window.approve", {"window": w.id, "user": w.user, "starts": w.starts, "ends": w.ends,
                                                 "reason": w.reason, "targets": list(w.targets)})  # fmt: skip
        say(args, f"時間枠 {w.id} を承認しました: {_when(cfg, w.starts)} 〜 {_when(cfg, w.ends)}",
            f"window {w.id} approved: {_when(cfg, w.starts)} - {_when(cfg, w.ends)}")  # fmt: skip
        return 0
    if args.cancel:
        w = store.cancel(args.cancel)
        _audit(ctx, args, "vpn.window.cancel", {"window": w.id, "user": w.user})
        say(args, f"時間枠 {w.id} を取り消しました（接続中なら切断されます）", f"window {w.id} cancelled")
        return 0
    if args.report:
        print(render_text(window_report(ctx, cfg, args.report), cfg.clinic.timezone, args.lang), end="")
        return 0
    now = wall()
    for w in store.list():
        state = (
            "承認中"
            if w.open_at(now)
            else ("取消" if w.cancelled else ("予定" if w.starts > now else "終了"))
        )
        if english(args):
            state = (
                "open"
                if w.open_at(now)
                else ("cancelled" if w.cancelled else ("planned" if w.starts > now else "over"))
            )
        print(f"{w.id:>4} {w.user:<14} {_when(cfg, w.starts)} - {_when(cfg, w.ends)} {state:<6} "
              f"{','.join(w.targets)}  {w.reason}  ({w.approved_by})")  # fmt: skip
    return 0


def cmd_sessions(args: argparse.Namespace, ctx: Context) -> int:
    cfg = live_config(ctx)
    if args.log:
        for e in peer_log(ctx, args.user, limit=args.limit):
            print(
                f"{_when(cfg, e.ts)} {e.user:<14} {e.kind:<14} {e.endpoint:<22} rx={e.rx} tx={e.tx} {e.detail}"
            )
        return 0
    for s in SessionManager(ctx, lambda: cfg).list(args.user, args.limit):
        end = _when(cfg, s.ended) if s.ended else pick(args, "接続中", "open")
        reason = s.end_reason
        if not english(args) and reason in END_REASON_JA:
            reason = f"{END_REASON_JA[reason]}({reason})"
        window = pick(args, f"時間枠 {s.window_id}", f"window {s.window_id}") if s.window_id else ""
        print(
            f"{s.id:>5} {s.user:<14} {s.tunnel_ip:<15} {_when(cfg, s.started)} - {end:<16} {reason:<12} {window}"
        )
    return 0


def cmd_reach(args: argparse.Namespace, ctx: Context) -> int:
    """Whether doctors can reach the box from outside, per family and through the relay (vpn/reach.py)."""
    from vpn.reach import check, when

    cfg = live_config(ctx)
    st = check(ctx, cfg)
    if args.json:
        print(json.dumps(st.to_dict(), ensure_ascii=False))
        return 0
    lang = pick(args, "ja", "en")
    for result, line in zip((st.ipv4, st.ipv6, st.link), st.messages(lang), strict=False):
        print(f"{line}  ({when(result.at, cfg.clinic.timezone)})")
    print(st.messages(lang)[-1])
    if cfg.vpn.probe is None:
        say(args, "到達確認の鍵（vpn.probe）が未設定です。保守業者に依頼してください（docs/vpn-lines.md）",
            "no probe keys (vpn.probe): ask the vendor (docs/vpn-lines.md)")  # fmt: skip
    return 0


def cmd_ddns(args: argparse.Namespace, ctx: Context) -> int:
    """The box's IPv6 name (vpn/ddns.py): status, an update now, or the TSIG secret from stdin (never shown)."""
    from vpn.ddns import save_secret
    from vpn.ddns_worker import DdnsUpdater, load_state

    if args.ddns_cmd == "set-secret":  # only writes the key file: works before any config exists
        ctx.db.migrate()
        save_secret(ctx.paths.keys_dir, sys.stdin.read(4096))
        known = config_in_force(ctx.db, ctx.paths.config)
        ddns = known.vpn.ddns if known is not None else None
        _audit(ctx, args, "vpn.ddns.secret_set", {"key_name": ddns.tsig_key_name if ddns else ""})
        say(args, "TSIG の鍵を保存しました", "TSIG secret saved")
        return 0
    cfg = live_config(ctx)
    if cfg.vpn.ddns is None:
        say(args, "IPv6 の名前の自動更新（vpn.ddns）は設定されていません", "vpn.ddns is not configured")
        return 1
    state = DdnsUpdater(ctx, cfg).step(force=True) if args.ddns_cmd == "update" else load_state(ctx)
    data = {k: v for k, v in state.to_dict().items() if k != "alerted"}
    print_status(args, data, lambda: state.lines(cfg.clinic.timezone, pick(args, "ja", "en")))
    return 0 if not state.error_ja else 1


def register(sub: argparse._SubParsersAction) -> None:
    vpn = sub.add_parser("vpn", help="VPN（リモート接続） / remote access").add_subparsers(
        dest="vpn_cmd", required=True
    )
    vpn.add_parser("users", help="利用者一覧 / list users").set_defaults(func=cmd_users)
    p = vpn.add_parser("add", help="端末を登録（設定と QR を一度だけ表示） / add a device")
    p.add_argument("user")
    p.add_argument("device", help="端末名（例: 自宅PC, iPhone）/ device name")
    p.add_argument("--public-key", help="利用者が自分で作った公開鍵 / bring your own public key")
    p.add_argument("--out", help="設定と QR コードを書き出すディレクトリ / write .conf and QR here")
    p.add_argument("--password-stdin", action="store_true", help="初期パスワードを標準入力から読む")
    p.add_argument("--reset-password", action="store_true", help="パスワードと確認コードを作り直す")
    p.set_defaults(func=cmd_add)
    p = vpn.add_parser("show-config", help="端末の設定を表示・再発行 / show or re-issue a device config")
    p.add_argument("user")
    p.add_argument("device")
    p.add_argument(
        "--reissue", action="store_true", help="新しい鍵で再発行（古い鍵は無効） / new key, old revoked"
    )
    p.add_argument("--out")
    p.set_defaults(func=cmd_show_config)
    p = vpn.add_parser("revoke", help="端末を無効にする（紛失・廃棄） / revoke a device")
    p.add_argument("user")
    p.add_argument("device")
    p.set_defaults(func=cmd_revoke)
    p = vpn.add_parser("disable", help="利用者を停止して切断 / disable a user and cut him")
    p.add_argument("user")
    p.add_argument("--enable", action="store_true", help="停止とロックを解除 / enable and unlock again")
    p.set_defaults(func=cmd_disable)
    p = vpn.add_parser("windows", help="保守の時間枠 / vendor maintenance windows")
    p.add_argument("--approve", metavar="VENDOR")
    p.add_argument("--hours", type=float, help="今から何時間 / the next N hours")
    p.add_argument("--from", dest="start")
    p.add_argument("--to", dest="end")
    p.add_argument("--reason")
    p.add_argument("--target", action="append", help="作業対象（複数可） / target system (repeatable)")
    p.add_argument("--cancel", type=int, metavar="ID")
    p.add_argument("--report", type=int, metavar="ID", help="作業報告 / session report")
    p.set_defaults(func=cmd_windows)
    p = vpn.add_parser("sessions", help="接続の記録 / sessions and tunnel log")
    p.add_argument("user", nargs="?")
    p.add_argument("--log", action="store_true", help="トンネルの記録（接続・接続元・通信量） / tunnel log")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_sessions)
    p = vpn.add_parser("reach", help="院外から接続できるか / can doctors reach the box from outside")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reach)
    ddns = vpn.add_parser("ddns", help="IPv6 の名前の自動更新 / the box's IPv6 name (RFC 2136)")
    ddns_sub = ddns.add_subparsers(dest="ddns_cmd", required=True)
    for name, help_ in (("status", "状態 / state"), ("update", "今すぐ更新 / update now")):
        p = ddns_sub.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_ddns)
    p = ddns_sub.add_parser("set-secret", help="TSIG の鍵を標準入力から保存 / TSIG secret from stdin")
    p.set_defaults(func=cmd_ddns)
