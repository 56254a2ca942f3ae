"""`mamori ids status | rules | update | alerts | incidents | incident | block | unblock`.

Output is Japanese (English with --lang en), worded for clinic staff first; the English rule message is
shown only as technical detail for the vendor. Every change (update, block, unblock, incident state) is
audited by the functions called here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from appliance.clock import show
from appliance.config.load import load_config, parse_config
from appliance.config.model import MamoriConfig
from appliance.errors import StateError
from appliance.service import ConfigService
from appliance.subsystem import Context
from ids import incidents as inc
from ids.eve_reader import counters
from ids.explain import explain
from ids.ingest import STATS_KEY
from ids.render import SuricataPaths
from ids.sources import current_source, info
from ids.supervisor import read_status

STATE_JA = {"starting": "起動中", "running": "動作中", "crashed": "異常終了（自動で再起動します）",
            "stopped": "停止", "disabled": "無効（設定で止めています）"}  # fmt: skip


def _cfg(ctx: Context) -> MamoriConfig:
    rev = ConfigService(ctx).current()
    if rev is not None:
        return parse_config(rev.config_text).model
    if ctx.paths.config.exists():
        return load_config(ctx.paths.config).model
    raise StateError("設定がまだ反映されていません", "no configuration has been applied yet")


def _tz(ctx: Context) -> str | None:
    """The clinic's zone for the times printed (None: the default zone, before any config)."""
    try:
        return _cfg(ctx).clinic.timezone
    except StateError:
        return None


def _t(ts: float | None, tz: str | None) -> str:
    return show(ts, tz, "%Y-%m-%d %H:%M:%S")


def _stamp(text: str | None, tz: str | None) -> str:
    """Suricata's own timestamp (ISO 8601 with the offset of its process's zone) in the clinic's zone."""
    try:
        return _t(dt.datetime.fromisoformat(text or "").timestamp(), tz)
    except ValueError:
        return text or "-"


def _en(args: argparse.Namespace) -> bool:
    return args.lang == "en"


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    s, c = read_status(ctx), counters(ctx.db)
    tz = _tz(ctx)
    user = s.user if s.pid is not None and s.user else "-"
    if _en(args):
        print(f"Suricata: {s.state} pid={s.pid} user={user} since={_t(s.since, tz)} restarts={s.restarts} "
              f"last_exit={s.last_exit}")  # fmt: skip
    else:
        print(f"Suricata: {STATE_JA.get(s.state, s.state)}  pid={s.pid}  実行ユーザー={user}  開始={_t(s.since, tz)}  "
              f"再起動={s.restarts}回  前回の終了コード={s.last_exit}")  # fmt: skip
    if s.pid is not None and s.user == "root":
        print("warning: Suricata runs as root (no mamori-ids account; run make setup)" if _en(args)
              else "注意: Suricata が root で動いています（mamori-ids アカウントがありません。make setup を実行してください）")  # fmt: skip
    if s.last_error:
        print(("last error: " if _en(args) else "最後のエラー: ") + s.last_error)
    keys = ("events", "alerts", "auto_block", "invalid_json", "invalid_utf8", "oversized", "not_eve",
            "unterminated", "rotations", "truncated", "alert_malformed", "auto_block_refused")  # fmt: skip
    print(("EVE: " if _en(args) else "取り込み: ") + ", ".join(f"{k}={c.get(k, 0)}" for k in keys))
    if c.get("refused_file"):  # ids.eve_reader: a link or other non-file where eve.json should be
        print(f"warning: {c['refused_file']} EVE file(s) refused (a link or not a regular file where eve.json is;"
              " Suricata may be compromised: tell the vendor)" if _en(args)
              else f"注意: eve.json の場所に通常のファイルでないもの（リンクなど）が置かれ、読み込みを拒否しました"
                   f"（{c['refused_file']}回）。Suricata が乗っ取られた可能性があります。保守業者に連絡してください")  # fmt: skip
    stats_text = ctx.db.get_kv(STATS_KEY)
    if stats_text:
        st = json.loads(stats_text)
        drops, pkts = st.get("kernel_drops") or 0, st.get("kernel_packets") or 0
        if _en(args):
            print(f"capture: {pkts} packets, {drops} dropped (at {_stamp(st.get('timestamp'), tz)})")
        else:
            print(
                f"監視: {pkts} パケット、取りこぼし {drops}（{_stamp(st.get('timestamp'), tz)} 時点）"
                + (
                    "  ※取りこぼしが多い場合は保守業者に相談してください"
                    if pkts and drops > pkts // 100
                    else ""
                )
            )
    _print_rules_age(args, ctx)
    _print_notify_troubles(args, ctx, tz)
    return 0


def _print_rules_age(args: argparse.Namespace, ctx: Context) -> None:
    """When the ET Open rules were last updated, and a warning past ids.rules_max_age_days (ids.freshness)."""
    from appliance.clock import show, wall
    from ids.freshness import rules_age

    try:
        cfg: MamoriConfig | None = _cfg(ctx)
    except StateError:
        cfg = None
    age = rules_age(ctx.paths, cfg, wall())
    tz = cfg.clinic.timezone if cfg else None
    if age.updated_at is None:
        print("rules: ET Open not installed" if _en(args) else "ルール: ET Open は入っていません")
    elif _en(args):
        print(f"rules: ET Open updated {show(age.updated_at, tz)} ({age.days} days ago)")
    else:
        print(f"ルール: ET Open を {show(age.updated_at, tz)} に更新（{age.days} 日前）")
    if age.stale and (cfg is None or cfg.ids.enabled):
        print(
            "warning: " + str(age.warning("en"))
            if _en(args)
            else f"注意: {age.warning('ja')}。保守業者に更新を依頼してください"
        )


def _print_notify_troubles(args: argparse.Namespace, ctx: Context, tz: str | None) -> None:
    """Channels that have not delivered for over 10 minutes (appliance.notify.outbox), if any."""
    from appliance.notify.outbox import trouble_text, troubles

    items = troubles(ctx.db)
    if not items:
        return
    if _en(args):
        for t in items:
            print(f"notifications: {t.channel} undelivered since {_t(t.since, tz)}"
                  f"{f', {t.expired} given up' if t.expired else ''}: {t.detail or 'waiting'}")  # fmt: skip
    else:
        print(f"{trouble_text(items)}  ※保守業者に連絡してください")


def cmd_rules(args: argparse.Namespace, ctx: Context) -> int:
    live = SuricataPaths.under(ctx.paths.run_dir)
    src = current_source(ctx.paths)
    text = live.rules.read_text(encoding="utf-8") if live.rules.exists() else ""
    enabled = sum(1 for line in text.splitlines() if line.startswith("alert"))
    src_info = info(src) if src else None
    if _en(args):
        print(f"rules in use: {enabled}; ET Open source: {src_info.rules if src_info else 'not installed'}")
    else:
        print(f"使用中のルール: {enabled}件 / ET Open: {f'{src_info.rules}件' if src_info else '未導入'}")
    return 0


def cmd_update(args: argparse.Namespace, ctx: Context) -> int:
    from ids.updates import update_rules

    ctx.db.migrate()
    author = getattr(args, "author", None) or "cli"
    res = update_rules(
        ctx, _cfg(ctx), src=Path(args.source) if args.source else None, url=args.url, actor=author
    )
    if _en(args):
        print(f"rules updated: {res.enabled} enabled of {res.total} (checked in {res.test_seconds:.1f} s)")
    else:
        print(f"ルールを更新しました: 有効 {res.enabled}件 / {res.total}件（確認 {res.test_seconds:.1f} 秒）")
    return 0


def cmd_alerts(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    with ctx.db.connection() as conn:
        rows = conn.execute("SELECT ts, sid, category, severity, signature, src_ip, dest_ip, dest_port, incident_id"
                            " FROM ids_alerts ORDER BY id DESC LIMIT ?", (args.limit,)).fetchall()  # fmt: skip
    tz = _tz(ctx)
    for r in rows:
        ex = explain(r["sid"], r["category"], r["severity"], r["signature"])
        print(f"{_t(r['ts'], tz)} [{ex.importance}] {ex.title}  {r['src_ip']} → {r['dest_ip']}:{r['dest_port']}"
              f"  #{r['incident_id']}")  # fmt: skip
    return 0


def cmd_incidents(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    cfg = _cfg(ctx)
    from ids.alerts import Resolver

    resolver = Resolver(cfg)
    tz = cfg.clinic.timezone
    state = inc.STATE_FROM_EN.get(args.state, args.state) if args.state else None
    for i in inc.list_incidents(ctx.db, state=state, limit=args.limit):
        ex = i.explanation
        src = resolver.endpoint(i.src_ip, None).label()
        dst = resolver.endpoint(i.dest_ip, None).label()
        print(f"#{i.id} [{i.state}] 【重要度 {ex.importance}】{ex.title}")
        print(f"    {src} → {dst}  {i.count}回  {_t(i.first_seen, tz)} 〜 {_t(i.last_seen, tz)}")
        print(f"    {ex.meaning}")
        print(f"    対応: {ex.action}")
        if args.verbose:
            print(f"    技術情報: sid {i.sid} {ex.technical}")
        if i.notes:
            print("    メモ: " + i.notes.replace("\n", "\n          "))
    return 0


def cmd_incident(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    author = getattr(args, "author", None) or "cli"
    i = inc.set_state(ctx.db, args.id, args.state, actor=author, note=args.note or "", tz=_tz(ctx))
    print(f"#{i.id}: {i.state if not _en(args) else inc.STATE_EN[i.state]}")
    return 0


def cmd_block(args: argparse.Namespace, ctx: Context) -> int:
    from appliance.config.types import parse_duration
    from ids.response import manual_block

    ctx.db.migrate()
    cfg = _cfg(ctx)
    timeout = parse_duration(args.duration) if args.duration else parse_duration(cfg.ids.auto_block.duration)
    author = getattr(args, "author", None) or "cli"
    ip = manual_block(ctx, cfg, args.ip, author, timeout, incident_id=args.incident)
    print(
        f"blocked {ip}"
        if _en(args)
        else f"{ip} を遮断しました（{args.duration or cfg.ids.auto_block.duration}）"
    )
    return 0


def cmd_unblock(args: argparse.Namespace, ctx: Context) -> int:
    from ids.response import unblock

    ctx.db.migrate()
    author = getattr(args, "author", None) or "cli"
    present = unblock(ctx, _cfg(ctx), args.ip, author)
    if _en(args):
        print(f"unblocked {args.ip}" if present else f"{args.ip} was not blocked")
    else:
        print(f"{args.ip} の遮断を解除しました" if present else f"{args.ip} は遮断されていませんでした")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ids = sub.add_parser("ids", help="侵入検知 / intrusion detection").add_subparsers(
        dest="ids_cmd", required=True
    )
    ids.add_parser("status", help="状態 / status").set_defaults(func=cmd_status)
    ids.add_parser("rules", help="ルール / rules in use").set_defaults(func=cmd_rules)
    p = ids.add_parser("update", help="ルール更新 / update rules")
    p.add_argument("--source", help="ルールのフォルダーまたは .tar.gz / rules directory or .tar.gz")
    p.add_argument("--url", help="suricata-update の取得先 / URL for suricata-update (file:// allowed)")
    p.set_defaults(func=cmd_update)
    p = ids.add_parser("alerts", help="アラート / alerts")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_alerts)
    p = ids.add_parser("incidents", help="インシデント / incidents")
    p.add_argument("--state", choices=(*inc.STATES, *inc.STATE_EN.values()))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_incidents)
    p = ids.add_parser("incident", help="インシデントの状態 / set an incident's state")
    p.add_argument("id", type=int)
    p.add_argument("state", choices=(*inc.STATES, *inc.STATE_EN.values()))
    p.add_argument("--note")
    p.set_defaults(func=cmd_incident)
    p = ids.add_parser("block", help="遮断 / block an address")
    p.add_argument("ip")
    p.add_argument("--duration", help="例: 24h")
    p.add_argument("--incident", type=int)
    p.set_defaults(func=cmd_block)
    p = ids.add_parser("unblock", help="遮断の解除 / unblock an address")
    p.add_argument("ip")
    p.set_defaults(func=cmd_unblock)
