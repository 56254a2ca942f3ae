"""「ソフトウェア更新」: the clinic's and the vendor's page for software updates.

Everyone signed in sees it (the running version is no secret to the clinic's staff); installing, checking and
uploading need `update.install` (the clinic administrator, or a vendor the clinic granted the update area).
The update directory is root's, so every read and change of it is the daemon's (update.web_actions): the
status (`update.status`), the install request for the root side (`update.install`), withdrawing it, asking
for a check. The progress bar polls `/update/progress`, a small JSON endpoint of the same status. An uploaded
bundle is spooled by the web app (appliance.actions.spool) and named to `update.upload`, which copies it to incoming/
under a size limit and verifies it like a download before it reaches staged/. Every action is audited by
update.actions (and refusals are, too).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from appliance.actions import spool
from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.revisions import live_config
from update.errors import UpdateRefused
from update.schedule import next_quiet_start
from update.stage import DEFAULT_LIMIT
from update.status import ROLLED_BACK_JA, UpdateStatus
from webui import actions
from webui import context as wctx
from webui.context import requires

bp = Blueprint("update", __name__, url_prefix="/update", template_folder="templates", static_folder="static")
VIEW = "dashboard.view"
INSTALL = "update.install"
AUTO_LABELS = {"off": "確認しない", "notify": "確認して受け取り、お知らせする（更新は手動）",
               "install": "確認して受け取り、静かな時間帯に自動で更新する"}  # fmt: skip
# Max upload (bytes): the web app reads at most this much of the request body for this endpoint (webui.app).
MAX_UPLOAD = DEFAULT_LIMIT


def update_status() -> UpdateStatus:
    return UpdateStatus(**actions.call("update.status", actor=wctx.actor_name())["status"])


def _refused(exc: MamoriError) -> bool:
    """An update refusal the person is told about (update.errors, or the spool's), not a fault."""
    return exc.code in (UpdateRefused.code, spool.SpoolError.code) or exc.code.startswith("update")


@bp.route("/")
@requires(VIEW)
def index() -> Any:
    cfg = live_config(wctx.ctx().db)
    s = update_status()
    tz = cfg.clinic.timezone if cfg else None
    tonight = next_quiet_start(s.quiet_hours, wall(), tz)
    return render_template("update/index.html", s=s, tonight=tonight, auto_labels=AUTO_LABELS,
                           rolled_back=ROLLED_BACK_JA, quiet_start=s.quiet_hours.split("-")[0])  # fmt: skip


@bp.route("/progress")
@requires(VIEW)
def progress() -> Any:
    s = update_status()
    last = s.progress[-1] if s.progress else {}
    return jsonify({
        "active": s.in_progress is not None,
        "percent": s.percent,
        "step": str(last.get("step", "")),
        "message": str(last.get("message_ja", "")),
    })  # fmt: skip


@bp.route("/install", methods=["POST"])
@requires(INSTALL)
def install() -> Any:
    when = "quiet" if request.form.get("when", "now") == "quiet" else "now"
    try:
        result = actions.call("update.install", actor=wctx.actor_name(), when=when, remote=wctx.remote())
    except MamoriError as exc:
        if not _refused(exc):
            raise
        flash(exc.text("ja"), "error")
        return redirect(url_for("update.index"))
    req = result["request"]
    if when == "now":
        flash(
            f"版 {req['version']} への更新を始めました。書き込みが終わると自動で再起動します（数分）。", "ok"
        )
    else:
        flash(
            f"版 {req['version']} を書き込み、静かな時間帯の始め（{result['quiet_start']}）に再起動します。",
            "ok",
        )
    return redirect(url_for("update.index"))


@bp.route("/cancel", methods=["POST"])
@requires(INSTALL)
def cancel() -> Any:
    try:
        req = actions.call("update.cancel", actor=wctx.actor_name(), remote=wctx.remote())["request"]
    except MamoriError as exc:
        if not _refused(exc):
            raise
        flash(exc.text("ja"), "error")
        return redirect(url_for("update.index"))
    flash(f"版 {req.get('version')} への更新の依頼を取りやめました。", "ok")
    return redirect(url_for("update.index"))


@bp.route("/check", methods=["POST"])
@requires(INSTALL)
def check() -> Any:
    actions.call("update.check", actor=wctx.actor_name())
    wctx.audit("update.check_asked", {})
    flash("新しい版の確認を依頼しました。1 分ほどしてからこのページを開き直してください。", "ok")
    return redirect(url_for("update.index"))


@bp.route("/upload", methods=["POST"])
@requires(INSTALL)
def upload() -> Any:
    ctx = wctx.ctx()
    cfg = live_config(ctx.db)
    limit = min(MAX_UPLOAD, (cfg.update.max_bundle_mb if cfg else 1024) * 1048576)
    file = request.files.get("bundle")
    if file is None or not file.filename:
        flash("更新ファイルを選んでください。", "error")
        return redirect(url_for("update.index"))
    try:
        with spool.spool_upload(ctx, "update", file.stream, limit) as name:
            staged = actions.call("update.upload", actor=wctx.actor_name(), upload=name, remote=wctx.remote())
    except MamoriError as exc:
        if not _refused(exc):
            raise
        flash(exc.text("ja") + " 何も保存していません。", "error")
        return redirect(url_for("update.index"))
    if staged["rolled_back"]:
        flash(
            f"版 {staged['version']} は、この機器で更新後の確認に失敗した版のため、入れられません。", "error"
        )
    else:
        flash(
            f"版 {staged['version']} の更新ファイルの署名を確認し、保存しました。下のボタンで更新できます。",
            "ok",
        )
    return redirect(url_for("update.index"))
