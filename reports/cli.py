"""`mamori report ...`: the checklist (text, JSON, HTML), the monthly report, and the clinic's answers."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from appliance.actor import cli_actor
from appliance.clock import wall
from appliance.fileio import atomic_write
from appliance.subsystem import Context
from reports import answers
from reports.checklist import Item, build_checklist, summary
from reports.gather import gather_snapshot, live_config
from reports.month_data import parse_month, previous_month
from reports.monthly import generate
from reports.render import render_html

STATE_EN = {"はい": "yes", "いいえ": "no", "要確認": "check", "機器では判定できません": "clinic answers"}


def _text(items: list[Item], lang: str) -> str:
    lines = []
    for i in items:
        state = STATE_EN[i.state] if lang == "en" else i.state
        lines.append(f"{i.number}  [{state}]  {i.wording}")
        lines.append(f"      {i.evidence}")
        if not i.box_judges:
            answer = i.answer or ("(not answered)" if lang == "en" else "（未回答）")
            target = f"  目標日 {i.target_date}" if i.target_date else ""
            lines.append(f"      {'clinic answer' if lang == 'en' else '医療機関の回答'}: {answer}{target}")
        for row in i.rows[:50]:
            lines.append("        - " + " | ".join(v or "—" for v in row))
    counts = summary(items)
    lines.append("")
    lines.append("  ".join(f"{STATE_EN[k] if lang == 'en' else k}: {v}" for k, v in counts.items()))
    return "\n".join(lines)


def cmd_checklist(args: argparse.Namespace, ctx: Context) -> int:
    now = wall()
    snap = gather_snapshot(ctx, now)
    items = build_checklist(snap)
    if args.format == "json":
        print(json.dumps({"generated": now, "revision": snap.config_revision, "audit_ok": snap.audit.ok,
                          "clock": dataclasses.asdict(snap.clock) if snap.clock else None,
                          "items": [dataclasses.asdict(i) for i in items]}, ensure_ascii=False, indent=1))  # fmt: skip
    elif args.format == "html":
        print(render_html("checklist.html", clinic=snap.clinic or "（未設定）", generated=now, tz=snap.timezone,
                          revision=snap.config_revision, items=items, counts=summary(items)))  # fmt: skip
    else:
        print(_text(items, args.lang))
    return 0


def cmd_monthly(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    cfg, _ = live_config(ctx)
    tz = cfg.clinic.timezone if cfg else "Asia/Tokyo"
    month = parse_month(args.month, tz) if args.month else previous_month(wall(), tz)
    report = generate(ctx, month, args.out, pdf=not args.no_pdf)
    for path in (report.html, report.pdf):
        if path is not None:
            print(path)
    return 0


def cmd_answer(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    actor = cli_actor(args)
    a = answers.set_answer(
        ctx.db, args.item, args.answer, args.target_date, args.note, actor=actor, source="cli"
    )
    if args.lang == "en":
        print(f"recorded: {args.item} = {a.answer or '(cleared)'} {a.target_date}".rstrip())
    else:
        print(f"記録しました: {args.item} = {a.answer or '（取り消し）'} {a.target_date}".rstrip())
    return 0


def cmd_ledger(args: argparse.Namespace, ctx: Context) -> int:
    from reports.api import ledger_csv

    text = ledger_csv(ctx)
    if args.out:
        atomic_write(Path(args.out), text, mode=0o640)
        print(args.out)
    else:
        print(text.lstrip("\ufeff"), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="チェックリストと月次報告 / checklist and monthly report")
    sub = report.add_subparsers(dest="report_cmd", required=True)
    p = sub.add_parser("checklist", help="厚労省チェックリストの証跡 / MHLW checklist evidence")
    p.add_argument("--format", choices=("text", "json", "html"), default="text")
    p.set_defaults(func=cmd_checklist)
    p = sub.add_parser("monthly", help="月次報告（HTML と PDF） / monthly report")
    p.add_argument("--month", help="YYYY-MM（既定は先月） / default: last month")
    p.add_argument("--out", help="出力先（既定は state_dir/reports） / output directory")
    p.add_argument("--no-pdf", action="store_true", help="HTML だけ作る / HTML only")
    p.set_defaults(func=cmd_monthly)
    p = sub.add_parser("ledger", help="機器台帳を CSV で出力 / device ledger as CSV")
    p.add_argument("--out", help="保存するファイル（Excel 用に BOM 付き） / file to write")
    p.set_defaults(func=cmd_ledger)
    p = sub.add_parser("answer", help="機器で判定できない項目への回答 / the clinic's answer to an item")
    p.add_argument("item", help="項目（例: 1-1, 2-3, 3-1） / item key")
    p.add_argument("answer", help="はい / いいえ / yes / no / none")
    p.add_argument("--target-date", default="", help="「いいえ」の場合の目標日 YYYY-MM-DD")
    p.add_argument("--note", default="")
    p.set_defaults(func=cmd_answer)
