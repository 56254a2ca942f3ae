"""監査ログ: who did what, when and from where, searchable, with the tamper check (AuditLog.verify)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from webui import context as wctx
from webui.context import requires

bp = Blueprint("auditlog", __name__, url_prefix="/audit")
PAGE = 100
ACTION_LABELS = {
    "web.login": "ログイン", "web.logout": "ログアウト", "web.login_failed": "ログイン失敗",
    "web.lockout": "アカウントのロック", "web.login_locked": "ロック中のログイン", "web.forbidden": "権限のない操作",
    "web.csrf_rejected": "不正な送信の拒否", "config.apply": "設定の適用", "config.confirm": "設定の確定",
    "config.auto_revert": "設定を自動で戻した", "config.apply_failed": "設定の適用に失敗",
    "alerts.ack": "アラートの確認", "alerts.resolve": "アラートの解決", "alerts.block": "遮断",
    "alerts.unblock": "遮断の解除", "accounts.create": "アカウント作成", "accounts.delete": "アカウント削除",
    "accounts.update": "アカウント変更", "accounts.unlock": "ロック解除", "web.password_changed": "パスワード変更",
    "vpn.window_approved": "保守作業の承認", "vpn.window_cancelled": "保守作業の取り消し",
    "web.setup_admin_created": "初期設定: 管理者の作成", "web.setup_admin_discarded": "初期設定: 途中の管理者を削除",
    "web.setup_done": "初期設定の完了", "web.totp_enrolled": "2段階認証の登録",
    "web.login_rate_limited": "ログインの一時停止（失敗が多い）", "vpn.device_added": "VPN機器の追加", "devices.export": "機器一覧の保存",
}  # fmt: skip


@bp.route("/")
@requires("audit.view")
def index() -> Any:
    q = request.args.get("q", "").strip()[:200] or None
    actor = request.args.get("actor", "").strip()[:64] or None
    page = max(0, request.args.get("page", 0, type=int))
    log = wctx.audit_log()
    entries = log.search(text=q, actor=actor, limit=PAGE, offset=page * PAGE)
    return render_template(
        "auditlog/index.html", entries=entries, verify=log.verify(), q=q or "", actor=actor or "",
        page=page, more=len(entries) == PAGE, labels=ACTION_LABELS,
    )  # fmt: skip
