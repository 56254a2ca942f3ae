"""`mamori fw ...`: what the firewall is doing (counters, drops) and the live block/quarantine lists.

Every change is written to the audit log. Output is Japanese unless --lang en.
"""

from __future__ import annotations

import argparse
import logging
import time

from pydantic_core import PydanticCustomError

from appliance.actor import cli_actor
from appliance.audit import audit_log
from appliance.clock import show, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.errors import MamoriError
from appliance.lang import pick
from appliance.revisions import config_in_force
from appliance.subsystem import Context
from firewall import droplog
from firewall import nftjson as nj
from firewall.nflog import NflogReader
from firewall.nft import list_json
from firewall.render import LOG_GROUP
from firewall.sets import Entry, FirewallSets

log = logging.getLogger(__name__)


def live_config(ctx: Context) -> MamoriConfig | None:
    """The config in force: the live revision, else the config file, else None (checks then rely on the kernel)."""
    ctx.db.migrate()
    return config_in_force(ctx.db, ctx.paths.config)


def _tz(cfg: MamoriConfig | None) -> str | None:
    """The clinic's zone for the times printed (None: the default zone, before any config)."""
    return cfg.clinic.timezone if cfg else None


def _sets(ctx: Context) -> FirewallSets:
    return FirewallSets(ctx, live_config(ctx))


def _audit(args: argparse.Namespace, ctx: Context, action: str, detail: dict) -> None:
    audit_log(ctx).record(cli_actor(args), action, detail, source="cli")


def _duration(text: str | None, default: str) -> int:
    try:
        return parse_duration(text or default)
    except PydanticCustomError as exc:
        ctx = exc.context or {}
        raise MamoriError(
            str(ctx.get("ja", exc)), str(ctx.get("en", exc)), code="firewall.duration"
        ) from None


def _left(args: argparse.Namespace, e: Entry) -> str:
    if e.expires_in is None:
        return pick(args, "無期限", "no expiry")
    minutes = int(e.expires_in // 60)
    return pick(args, f"あと{minutes // 60}時間{minutes % 60}分", f"{minutes // 60}h{minutes % 60:02d}m left")


def cmd_block(args: argparse.Namespace, ctx: Context) -> int:
    fw = _sets(ctx)
    default = fw.cfg.firewall.block_timeout if fw.cfg else "24h"
    seconds = None if args.permanent else _duration(args.duration, default)
    ip = fw.block(args.ip, seconds, args.reason, "cli")
    _audit(args, ctx, "firewall.block", {"ip": ip, "seconds": seconds, "reason": args.reason})
    until = (
        pick(args, "解除するまで", "until unblocked")
        if seconds is None
        else show(wall() + seconds, _tz(fw.cfg), "%Y-%m-%d %H:%M")
    )
    print(pick(args, f"{ip} を遮断しました（{until}）", f"blocked {ip} ({until})"))
    return 0


def cmd_unblock(args: argparse.Namespace, ctx: Context) -> int:
    present = _sets(ctx).unblock(args.ip, "cli")
    _audit(args, ctx, "firewall.unblock", {"ip": args.ip, "was_blocked": present})
    print(pick(args, f"{args.ip} の遮断を解除しました", f"unblocked {args.ip}") if present
          else pick(args, f"{args.ip} は遮断されていません", f"{args.ip} was not blocked"))  # fmt: skip
    return 0


def _print_entries(args: argparse.Namespace, entries: list[Entry], empty_ja: str, empty_en: str) -> None:
    if not entries:
        print(pick(args, empty_ja, empty_en))
    for e in entries:
        print(f"{e.ip:<40} {_left(args, e):<16} {e.source:<8} {e.reason}")


def cmd_blocked(args: argparse.Namespace, ctx: Context) -> int:
    _print_entries(args, _sets(ctx).list_blocked(), "遮断中のアドレスはありません", "no address is blocked")
    return 0


def cmd_quarantine(args: argparse.Namespace, ctx: Context) -> int:
    seconds = _duration(args.duration, "24h") if args.duration else None
    ip = _sets(ctx).quarantine(args.ip, seconds, args.reason, "cli")
    _audit(args, ctx, "firewall.quarantine", {"ip": ip, "seconds": seconds, "reason": args.reason})
    print(pick(args, f"{ip} を隔離しました（管理画面にだけ接続できます）",
             f"quarantined {ip} (it can reach only the web UI)"))  # fmt: skip
    return 0


def cmd_release(args: argparse.Namespace, ctx: Context) -> int:
    present = _sets(ctx).release(args.ip, "cli")
    _audit(args, ctx, "firewall.release", {"ip": args.ip, "was_quarantined": present})
    print(pick(args, f"{args.ip} の隔離を解除しました", f"released {args.ip}") if present
          else pick(args, f"{args.ip} は隔離されていません", f"{args.ip} was not quarantined"))  # fmt: skip
    return 0


def counters() -> dict[str, tuple[int, int]]:
    """Named counters of the table: name -> (packets, bytes). Empty when the table is not loaded."""
    out = {}
    for obj in list_json(f"list counters table {nj.FAMILY} {nj.TABLE}") or []:
        c = obj.get("counter")
        if c:
            out[c["name"]] = (int(c.get("packets", 0)), int(c.get("bytes", 0)))
    return out


def rule_counters() -> list[tuple[str, int, int]]:
    """(comment, packets, bytes) of every clinic rule (custom allow, VPN access, port forward), summed over
    the nft rules one config rule became (one per address family, service protocol or schedule window)."""
    totals: dict[str, list[int]] = {}
    for obj in list_json(f"list table {nj.FAMILY} {nj.TABLE}", terse=True) or []:
        rule = obj.get("rule")
        if not rule or not rule.get("comment", "").startswith(("rule ", "vpn ", "forward ")):
            continue
        for expr in rule.get("expr", []):
            c = expr.get("counter") if isinstance(expr, dict) else None
            if isinstance(c, dict):
                t = totals.setdefault(rule["comment"], [0, 0])
                t[0] += int(c.get("packets", 0))
                t[1] += int(c.get("bytes", 0))
    return [(name, p, b) for name, (p, b) in totals.items()]


def _pair_label(args: argparse.Namespace, name: str) -> str | None:
    box = pick(args, "本機", "box")
    if name.startswith("fwd_"):
        src, dst = name[4:].split("_", 1)
        return f"{src} → {dst}"
    if name.startswith("in_") and name != "in_quarantine":
        return f"{name[3:]} → {box}"
    return None


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    found = counters()
    if not found:
        print(pick(args, "ファイアウォールは読み込まれていません（設定を反映してください）",
                 "the firewall table is not loaded (apply the config)"))  # fmt: skip
        return 1
    print(
        pick(
            args,
            "ゾーン間の通信          パケット      バイト    遮断",
            "zone pair               packets       bytes   drops",
        )
    )
    for name, (pkts, nbytes) in sorted(found.items()):
        label = _pair_label(args, name)
        if label is None:
            continue
        key = name[4:] if name.startswith("fwd_") else f"{name[3:]}_box"
        drops = sum(p for n, (p, _b) in found.items() if n.startswith(f"d_{key}_"))
        print(f"{label:<20} {pkts:>10} {nbytes:>11} {drops:>7}")
    rules = rule_counters()
    if rules:
        print(
            pick(
                args,
                "\n設定したルール              パケット      バイト",
                "\nconfigured rules              packets       bytes",
            )
        )
        for name, pkts, nbytes in rules:
            print(f"{name:<28} {pkts:>8} {nbytes:>11}")
    other = {
        n: v
        for n, v in found.items()
        if n.startswith("d_") and n.split("_")[1] in ("any", "in", "fwd", "quarantine")
    }
    for name, (pkts, _b) in sorted(other.items()):
        print(f"{name:<20} {pkts:>10}")
    return 0


def _print_drop(args: argparse.Namespace, d: droplog.Drop, tz: str | None) -> None:
    pair, reason = droplog.describe(d.prefix)
    when = show(d.ts, tz, "%m-%d %H:%M:%S")
    port = f":{d.dport}" if d.dport is not None else ""
    print(
        f"{when} {pair:<16} {reason:<18} {d.proto:<6} {d.src} → {d.dst}{port} ({d.in_if}→{d.out_if or '-'})"
    )


def cmd_drops(args: argparse.Namespace, ctx: Context) -> int:
    tz = _tz(live_config(ctx))
    if args.listen:
        reader = NflogReader(LOG_GROUP)
        try:
            deadline = time.monotonic() + args.listen
            while time.monotonic() < deadline:
                for d in reader.read(timeout=min(1.0, max(0.05, deadline - time.monotonic()))):
                    _print_drop(args, d, tz)
        finally:
            reader.close()
        return 0
    ctx.db.migrate()
    drops = droplog.recent(ctx.db, args.limit)
    if not drops:
        print(pick(args, "記録された遮断はありません", "no drops recorded"))
    for d in drops:
        _print_drop(args, d, tz)
    return 0


def cmd_devices(args: argparse.Namespace, ctx: Context) -> int:
    from firewall.inventory import Inventory

    cfg = live_config(ctx)
    if cfg is None:
        raise MamoriError(
            "設定がまだ反映されていません", "no config has been applied yet", code="firewall.no_config"
        )
    inv = Inventory(ctx, cfg)
    if args.scan:
        inv.scan()
    if args.csv:
        print(inv.csv(), end="")
        return 0
    devices = inv.devices()
    if not devices:
        print(pick(args, "記録された機器はありません", "no device recorded"))
    for d in devices:
        last = show(d["last_seen"], cfg.clinic.timezone, "%m-%d %H:%M")
        print(
            f"{d['mac']}  {d['ip']:<16} {d['zone']:<8} {d['hostname'] or '-':<16} {last}  {d['vendor'] or '?'}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    fw = subparsers.add_parser("fw", help="ファイアウォール / firewall").add_subparsers(
        dest="fw_cmd", required=True
    )
    fw.add_parser("status", help="ゾーン間の通信量と遮断数 / counters per zone pair").set_defaults(
        func=cmd_status
    )
    p = fw.add_parser("drops", help="最近遮断した通信 / recent drops")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument(
        "--listen", type=float, metavar="SECONDS", help="デーモンなしで直接受信 / read NFLOG directly"
    )
    p.set_defaults(func=cmd_drops)
    for name, func, helptext in (
        ("block", cmd_block, "アドレスを遮断 / block an address"),
        ("quarantine", cmd_quarantine, "院内の機器を隔離 / quarantine a clinic host"),
    ):
        p = fw.add_parser(name, help=helptext)
        p.add_argument("ip")
        p.add_argument("--for", dest="duration", metavar="DURATION", help="期間（例: 30m, 24h, 7d）")
        p.add_argument("--reason", default="", help="理由 / reason")
        if name == "block":
            p.add_argument("--permanent", action="store_true", help="解除するまで / until unblocked")
        p.set_defaults(func=func)
    for name, func, helptext in (
        ("unblock", cmd_unblock, "遮断を解除 / unblock"),
        ("release", cmd_release, "隔離を解除 / release from quarantine"),
    ):
        p = fw.add_parser(name, help=helptext)
        p.add_argument("ip")
        p.set_defaults(func=func)
    p = fw.add_parser("devices", help="機器の台帳 / device inventory")
    p.add_argument("--csv", action="store_true", help="CSV で出力 / export as CSV")
    p.add_argument("--scan", action="store_true", help="いま調べ直す / scan now")
    p.set_defaults(func=cmd_devices)
    fw.add_parser("blocked", help="遮断中のアドレス / blocked addresses").set_defaults(func=cmd_blocked)
    fw.add_parser("quarantined", help="隔離中の機器 / quarantined hosts").set_defaults(
        func=lambda a, c: (
            _print_entries(
                a, _sets(c).list_quarantined(), "隔離中の機器はありません", "no host is quarantined"
            ),
            0,
        )[1]
    )
