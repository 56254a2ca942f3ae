"""設定 → 保守業者の一括変更: the clinic administrator's page for the fleet API (admin only).

Two things, both the clinic's alone: the switch 「保守業者による設定の一括変更を許可する」 (`fleet.allow_changes`,
a config change through the one review page, fleet.manage) and the vendor accounts' API tokens (made here,
shown once on the answer page, never stored in the cookie or the flash; revoked here; accounts.manage).
"""

from __future__ import annotations

from typing import Any

import yaml
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.config.authority import ACCOUNTS_MANAGE, FLEET_MANAGE
from appliance.errors import MamoriError
from fleetapi.tokens import TokenStore
from webui import changes, core
from webui import context as wctx
from webui.context import requires

bp = Blueprint("fleetweb", __name__, url_prefix="/settings/fleet", template_folder="templates")


def _store() -> TokenStore:
    return TokenStore(wctx.ctx().db, clock=wctx.now)


def _page(new_token: str = "", status: int = 200) -> Any:
    cfg = core.live_config()
    vendors = [a for a in wctx.accounts().all() if a.role == "vendor"]
    return render_template("fleetapi/index.html", allowed=bool(cfg and cfg.fleet.allow_changes),
                           tokens=_store().all(), vendors=vendors, new_token=new_token,
                           now=wctx.now()), status  # fmt: skip


@bp.route("/")
@requires(ACCOUNTS_MANAGE)
def index() -> Any:
    return _page()


@bp.route("/allow", methods=["POST"])
@requires(FLEET_MANAGE)
def allow() -> Any:
    """Propose fleet.allow_changes on or off; the review page applies it (audited, commit-confirm)."""
    text = core.live_text()
    if text is None:
        abort(409)
    data = yaml.safe_load(text)
    want = request.form.get("allow") == "on"
    data["fleet"] = {**(data.get("fleet") or {}), "allow_changes": want}
    comment = "保守業者による設定の一括変更を" + ("許可する" if want else "許可しない")
    token = changes.propose(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), comment, FLEET_MANAGE)
    return redirect(url_for("settings.review", token=token))


@bp.route("/tokens", methods=["POST"])
@requires(ACCOUNTS_MANAGE)
def create_token() -> Any:
    account = request.form.get("account", "")
    label = request.form.get("label", "").strip()[:64]
    try:
        info, token = _store().create(account, wctx.user().name, label)
    except MamoriError as exc:
        flash(exc.text("ja"), "error")
        return redirect(url_for("fleetweb.index"))
    wctx.audit("fleet.token_created", {"account": account, "token": info.id, "label": label})
    return _page(new_token=token)


@bp.route("/tokens/<token_id>/revoke", methods=["POST"])
@requires(ACCOUNTS_MANAGE)
def revoke_token(token_id: str) -> Any:
    try:
        info = _store().revoke(token_id)
    except MamoriError as exc:
        flash(exc.text("ja"), "error")
        return redirect(url_for("fleetweb.index"))
    wctx.audit("fleet.token_revoked", {"account": info.account, "token": info.id})
    flash(f"鍵 {info.id}（{info.account}）を無効にしました。この鍵ではもう接続できません。", "ok")
    return redirect(url_for("fleetweb.index"))
