"""設定 → 保守業者の管理接続: the clinic administrator's page for the vendor hub's link (`mgmt.manage`,
admin only, never grantable to a vendor).

Shows whether the link is on and up (latest handshake), when the hub last connected and what it did (audit
entries from the hub's addresses and the link's own records), the box's public key for the vendor, and one
button 「保守業者の管理接続を切る」 that cuts it at once (mgmt.actions.cut: interface down, audited, notice,
then `mgmt.enabled: false`). Enrolment: the code the vendor gives (pasted, or read from its QR by any QR
reader) is decoded and the hub's endpoint and key fingerprint are shown; only after the administrator ticks
that the fingerprint matches what the vendor reads on the phone does it become a config change, which goes
through the one review page like every other settings page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.errors import ConfigError, MamoriError
from mgmt import actions
from mgmt.code import Enrolment, decode_code
from mgmt.status import LinkState
from webui import actions as web_actions
from webui import changes, core
from webui import context as wctx
from webui.context import requires

bp = Blueprint("mgmt", __name__, url_prefix="/settings/mgmt", template_folder="templates")
PERMISSION = "mgmt.manage"
MAX_CODE = 4000


def _page(error: str = "", code: str = "", status: int = 200) -> Any:
    # The link's key and `wg show` are root's: the daemon reads the state (mgmt.web_actions).
    state = LinkState(**web_actions.call("mgmt.status", actor=wctx.actor_name())["state"])
    return render_template("mgmt/index.html", s=state, error=error, code=code), status


@bp.route("/")
@requires(PERMISSION)
def index() -> Any:
    return _page()


def _decoded() -> tuple[str, Enrolment | None, str]:
    code = request.form.get("code", "")[:MAX_CODE]
    try:
        return code, decode_code(code), ""
    except MamoriError as exc:
        return code, None, exc.text("ja")


@bp.route("/decode", methods=["POST"])
@requires(PERMISSION)
def decode() -> Any:
    code, enrolment, error = _decoded()
    if enrolment is None:
        return _page(error, code, 400)
    return render_template("mgmt/decode.html", e=enrolment, code=code)


@bp.route("/approve", methods=["POST"])
@requires(PERMISSION)
def approve() -> Any:
    code, enrolment, error = _decoded()
    if enrolment is None:
        return _page(error, code, 400)
    if request.form.get("fingerprint_ok") != "on":
        flash(
            "保守業者が電話で読み上げた指紋と一致することを確認してから、チェックを入れてください。", "error"
        )
        return render_template("mgmt/decode.html", e=enrolment, code=code), 400
    text = core.live_text()
    if text is None:
        abort(409)
    new_text = actions.enrolled_text(text, enrolment)
    try:
        core.service().validate(new_text)
    except ConfigError as exc:
        problems = [i.message.ja for i in exc.issues if i.path.startswith("mgmt")] or [exc.text("ja")]
        return _page("。".join(p.rstrip("。") for p in problems) + "。", code, 400)
    wctx.audit("mgmt.enrol_approved", {"hub": enrolment.hub_endpoint, "fingerprint": enrolment.fingerprint,
                                       "address": enrolment.address})  # fmt: skip
    comment = f"保守業者の管理接続を登録する（{enrolment.hub_endpoint}、指紋 {enrolment.fingerprint}）"
    token = changes.propose(new_text, comment, PERMISSION)
    return redirect(url_for("settings.review", token=token))


@bp.route("/cut", methods=["POST"])
@requires(PERMISSION)
def cut() -> Any:
    account = wctx.user()
    assert account is not None  # requires() let us in
    try:
        web_actions.call("mgmt.cut", actor=account.name, remote=wctx.remote())  # the daemon: mgmt.web_actions
    except MamoriError as exc:
        flash(f"接続は切りましたが、設定の変更ができませんでした: {exc.text('ja')}", "error")
        return redirect(url_for("mgmt.index"))
    flash("保守業者の管理接続を切りました。保守業者はこの機器に接続できません。", "ok")
    return redirect(url_for("mgmt.index"))
