"""アカウント: the administrator creates, disables and deletes web accounts and lifts a sign-in hold (failed
sign-ins wait per address, webui.throttle; 制限を解除 forgets them); unused accounts are flagged (checklist:
不要なアカウントの削除). Vendor accounts get an expiry and a list of granted areas."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.errors import MamoriError
from webui import context as wctx
from webui.accounts import AREA_GRANTS, BY_NAME_GRANTS, GRANT_LABELS, GRANTABLE, ROLE_LABELS
from webui.context import requires
from webui.throttle import current as throttle

bp = Blueprint("accounts", __name__, url_prefix="/accounts")


@bp.route("/")
@requires("accounts.manage")
def index() -> Any:
    accounts = wctx.accounts().all()
    return render_template(
        "accounts/index.html", accounts=accounts, now=wctx.now(), grant_labels=GRANT_LABELS,
        roles=ROLE_LABELS, grantable=AREA_GRANTS, by_name=BY_NAME_GRANTS,
        held=throttle().held_back(a.name for a in accounts),
    )  # fmt: skip


@bp.route("/", methods=["POST"])
@requires("accounts.manage")
def create() -> Any:
    form = request.form
    role = form.get("role", "viewer")
    expires = None
    if role == "vendor":
        hours = form.get("vendor_hours", type=float) or 0
        if not 0 < hours <= 24 * 30:
            flash("保守業者の有効期間は1時間〜30日の間で入力してください。", "error")
            return redirect(url_for("accounts.index"))
        expires = wctx.now() + hours * 3600
    grants = tuple(g for g in form.getlist("grants") if g in GRANTABLE) if role == "vendor" else ()
    try:
        wctx.accounts().create(form.get("username", "").strip(), form.get("password", ""), role,
                               display_name=form.get("display_name", "").strip()[:64], expires_at=expires,
                               grants=grants)  # fmt: skip
    except MamoriError as exc:
        flash(exc.text("ja"), "error")
        return redirect(url_for("accounts.index"))
    wctx.audit("accounts.create", {"user": form.get("username"), "role": role, "grants": list(grants),
                                   "expires_at": expires})  # fmt: skip
    flash(f"アカウント「{form.get('username')}」を作りました。最初のログインで2段階認証を登録します。" if role != "viewer"
          else f"アカウント「{form.get('username')}」を作りました。", "ok")  # fmt: skip
    return redirect(url_for("accounts.index"))


@bp.route("/<name>/<action>", methods=["POST"])
@requires("accounts.manage")
def change(name: str, action: str) -> Any:
    store = wctx.accounts()
    account = store.get(name)
    if account is None:
        abort(404)
    if name == wctx.user().name and action in ("disable", "delete"):
        flash("自分自身のアカウントは止めたり削除したりできません。", "error")
        return redirect(url_for("accounts.index"))
    if action == "unlock":
        throttle().release(name)
    elif action in ("disable", "enable"):
        store.update(name, disabled=1 if action == "disable" else 0)
    elif action == "delete":
        store.delete(name)
    else:
        abort(404)
    wctx.audit(
        f"accounts.{action if action in ('unlock', 'delete') else 'update'}", {"user": name, "action": action}
    )
    flash({"unlock": "ログインの制限を解除しました。", "disable": "アカウントを止めました。", "enable": "アカウントを使えるようにしました。",
           "delete": "アカウントを削除しました。"}[action], "ok")  # fmt: skip
    return redirect(url_for("accounts.index"))
