"""The monthly report: one month of the box's records, the checklist and a sign-off field, as HTML and PDF.

`generate(ctx, month)` gathers (reports.month_data, reports.gather), builds the template context here
(plain data, unit-testable), renders, and writes YYYY-MM.html and YYYY-MM.pdf into state_dir/reports
(or `out_dir`), recording the run in report_runs. The guideline asks that logs be reviewed regularly:
the last page is where the reviewer signs.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.fileio import atomic_write
from appliance.subsystem import Context
from reports import charts
from reports.checklist import CHECK, NO, Item, build_checklist, summary
from reports.gather import gather_snapshot, live_config
from reports.month_data import Month, MonthData, gather_month
from reports.render import html_to_pdf, render_html
from reports.snapshot import UNAVAILABLE, Snapshot

log = logging.getLogger(__name__)

SOURCE_LABELS = {"cli": "コマンド", "web": "管理画面", "boot": "起動時", "timer": "自動", "vpn": "VPN",
                 "ids": "侵入検知（自動）", "daemon": "自動", "api": "管理画面"}  # fmt: skip
ACTION_LABELS = {
    "config.apply": "設定の反映", "config.confirm": "設定の確定", "config.auto_revert": "確定がなく自動で元に戻した",
    "config.apply_failed": "設定の反映に失敗（変更なし）", "backup.create": "バックアップの作成",
    "backup.create_failed": "バックアップの失敗", "backup.test": "復元テスト", "backup.restore": "バックアップからの復元",
    "backup.prune": "古いバックアップの削除", "ids.incident.state": "インシデントの状態・対応の記録",
    "reports.checklist.answer": "チェックリストへの回答", "vpn.signin": "VPNへのサインイン",
    "vpn.signin.refused": "VPNへのサインインの拒否", "vpn.session.end": "VPN接続の終了",
    "vpn.window.closed": "保守時間の終了", "web.login": "管理画面へのログイン", "web.login_failed": "管理画面へのログイン失敗",
    "reports.mail": "月次報告のメール送信",
}  # fmt: skip
END_REASONS = {"logout": "ログアウト", "expired": "時間切れ", "window_end": "保守時間の終了", "disabled": "利用停止",
               "lockout": "ロック", "": "接続中"}  # fmt: skip
ROLE_LABELS = {"doctor": "医師", "staff": "職員", "vendor": "保守業者", "admin": "管理者", "viewer": "閲覧"}


def reports_dir(ctx: Context) -> Path:
    return ctx.paths.state_dir / "reports"


@dataclass(frozen=True)
class GeneratedReport:
    month: str
    html: Path
    pdf: Path | None


def _sessions_by_user(data: MonthData) -> list[dict] | None:
    if data.vpn_sessions is None:
        return None
    users: dict[str, dict] = {}
    for s in data.vpn_sessions:
        end = s["ended"] or min(s["expires"], wall())
        u = users.setdefault(s["user"], {"user": s["user"], "count": 0, "seconds": 0.0, "rows": []})
        u["count"] += 1
        u["seconds"] += max(0.0, end - s["started"])
        u["rows"].append({**s, "seconds": max(0.0, end - s["started"]),
                          "reason": END_REASONS.get(s["end_reason"], s["end_reason"])})  # fmt: skip
    for u in users.values():
        vol = (data.vpn_volumes or {}).get(u["user"])
        u["rx"], u["tx"] = vol if vol else (None, None)
    return sorted(users.values(), key=lambda u: u["user"])


def _attention(items: list[Item], data: MonthData, snap: Snapshot) -> list[str]:
    """What a person should look at first, in plain words."""
    out = []
    open_incidents = [i for i in data.incidents or [] if i["state"] != "解決済み"]
    if open_incidents:
        out.append(f"対応が終わっていないインシデントが {len(open_incidents)} 件あります（1章）。")
    if not snap.audit.ok:
        out.append(f"監査ログの検査で異常が見つかりました: {snap.audit.text}。販売店に連絡してください。")
    out += [f"チェックリスト {i.number}: {i.evidence}" for i in items if i.state == NO]
    out += [f"チェックリスト {i.number}（要確認）: {i.evidence}" for i in items if i.state == CHECK]
    return out


def context(snap: Snapshot, data: MonthData, generated: float) -> dict:
    """Everything the template shows, as plain data. Unit tests check numbers here and in the PDF."""
    items = build_checklist(snap)
    m = data.month
    labels = [str(d) for d in range(1, m.days + 1)]
    chart = (charts.bar_chart(data.alerts_per_day, labels, "日ごとの検知件数")
             if data.alerts_per_day is not None else "")  # fmt: skip
    sessions = _sessions_by_user(data)
    backup_item = next(i for i in items if i.key == "3-2")
    year, month = m.label.split("-")
    return {
        "clinic": snap.clinic or "（未設定）", "month": m, "title_month": f"{year}年{int(month)}月",
        "tz": m.tz, "generated": generated, "revision": snap.config_revision, "unavailable": UNAVAILABLE,
        "data": data, "chart": chart, "sessions": sessions, "snap": snap, "items": items,
        "counts": summary(items), "attention": _attention(items, data, snap), "backup_item": backup_item,
        "vpn_session_total": sum(u["count"] for u in sessions) if sessions is not None else None,
        "incident_count": len(data.incidents) if data.incidents is not None else None,
        "block_count": len(data.blocks) if data.blocks is not None else None,
        "window_count": len(data.vendor_windows) if data.vendor_windows is not None else None,
        "source_labels": SOURCE_LABELS, "action_labels": ACTION_LABELS, "role_labels": ROLE_LABELS,
    }  # fmt: skip


def render_month(ctx: Context, month: Month, now: float | None = None) -> str:
    now = wall() if now is None else now
    snap = gather_snapshot(ctx, now)
    cfg, _ = live_config(ctx)
    return render_html("monthly.html", **context(snap, gather_month(ctx, month, cfg), now))


def _record(ctx: Context, month: str, html: Path | None, pdf: Path | None, error: str = "") -> None:
    with ctx.db.transaction() as conn:
        conn.execute("INSERT INTO report_runs(ts, month, html, pdf, ok, error) VALUES (?, ?, ?, ?, ?, ?)",
                     (wall(), month, str(html or ""), str(pdf or ""), int(not error), error))  # fmt: skip


def generate(ctx: Context, month: Month, out_dir: Path | None = None, pdf: bool = True,
             now: float | None = None) -> GeneratedReport:  # fmt: skip
    """Render the month and write its HTML (and PDF); recorded in report_runs, failures too."""
    ctx.db.migrate()
    target = Path(out_dir) if out_dir else reports_dir(ctx)
    html_path, pdf_path = target / f"{month.label}.html", target / f"{month.label}.pdf"
    try:
        html = render_month(ctx, month, now)
        atomic_write(html_path, html, mode=0o640)
        if pdf:
            html_to_pdf(html, pdf_path)
    except (OSError, sqlite3.Error, MamoriError) as exc:
        _record(ctx, month.label, None, None, exc.text("en") if isinstance(exc, MamoriError) else str(exc))
        raise
    _record(ctx, month.label, html_path, pdf_path if pdf else None)
    log.info("reports: monthly report %s written to %s", month.label, target)
    return GeneratedReport(month.label, html_path, pdf_path if pdf else None)


def has_report(ctx: Context, month: str) -> bool:
    with ctx.db.connection() as conn:
        return (
            conn.execute("SELECT 1 FROM report_runs WHERE month = ? AND ok = 1", (month,)).fetchone()
            is not None
        )
