"""設定: the config as text, an editor with Japanese messages beside the problem, the diff before applying,
apply with the confirm timer, confirm, and rollback to an earlier revision. All through ConfigService.

The review page is the one door every web change passes (editor, every form, rollback): it applies with
the account's permission set as `authority`, so ConfigService refuses, before anything is applied, a
change to a section the account may not touch (appliance.config.authority has the table)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from appliance.clock import show
from appliance.config.authority import NOTIFICATIONS_MANAGE, WEB_MANAGE, ConfigRefused
from appliance.config.load import parse_config
from appliance.errors import ConfigError, MamoriError
from webui import actions, changes, core
from webui import context as wctx
from webui.context import requires
from webui.permissions import permissions_of
from webui.views.settings_bp import bp
from webui.yamlpath import line_of

EDIT_PERMISSIONS = ("settings.edit", "firewall.edit", "vpn.edit")


@bp.route("/")
@requires("settings.view")
def index() -> Any:
    svc = core.service()
    return render_template(
        "settings/index.html", text=core.live_text(), pending=svc.pending(), history=svc.history(20)
    )


@bp.route("/edit", methods=["GET", "POST"])
@requires("settings.edit")
def edit() -> Any:
    if request.method == "GET":
        return render_template("settings/edit.html", text=core.live_text() or "", annotated=None, comment="")
    text = request.form.get("config", "").replace("\r\n", "\n")
    comment = request.form.get("comment", "").strip()[:200]
    try:
        core.service().validate(text)
    except ConfigError as exc:
        return render_template(
            "settings/edit.html", text=text, comment=comment, annotated=annotate(text, exc), issues=exc.issues
        ), 400
    try:
        token = changes.propose(text, comment or "設定画面からの変更", "settings.edit")
    except ConfigRefused as exc:
        flash(exc.text("ja"), "error")
        return render_template("settings/edit.html", text=text, comment=comment, annotated=None), 403
    return redirect(url_for("settings.review", token=token))


# Where a form goes back to when its change is refused before review (never a URL the request names).
_BACK = {"settings.ssh_change": "settings.ssh_page", "settings.ids_profile": "settings.ids"}


@bp.app_errorhandler(ConfigRefused)
def refused(exc: ConfigRefused) -> Any:
    """A page proposed a change its account may not make (changes.propose audited it): say so, go back."""
    flash(exc.text("ja"), "error")
    endpoint = request.endpoint or ""
    back = _BACK.get(endpoint, endpoint.split(".")[0] + ".index")
    return redirect(url_for(back if back in current_app.view_functions else "dashboard.index"))


def annotate(text: str, exc: ConfigError) -> list[tuple[int, str, list[str]]]:
    """(line number, line, messages for that line) for the whole text: messages sit beside the problem."""
    by_line: dict[int, list[str]] = {}
    for issue in exc.issues:
        line = line_of(text, issue.path) or 1
        where = f"{issue.path}: " if issue.path else ""
        by_line.setdefault(line, []).append(where + issue.message.ja)
    lines = text.split("\n")
    return [(n, line, by_line.get(n, [])) for n, line in enumerate(lines, start=1)]


@bp.route("/review/<token>", methods=["GET", "POST"])
@requires("dashboard.view")
def review(token: str) -> Any:
    proposal = changes.load(token)
    if proposal is None:
        flash("この変更案は期限が切れたか、見つかりません。もう一度やり直してください。", "warn")
        return redirect(url_for("dashboard.index"))
    if not wctx.can(proposal.permission):
        wctx.audit("web.forbidden", {"path": request.path, "needs": proposal.permission})
        abort(403)
    svc = core.service()
    authority = permissions_of(wctx.user())
    if request.method == "GET":
        refusal = _refusal(svc, proposal.text, authority)
        return render_template("settings/review.html", proposal=proposal, diff=svc.diff(proposal.text),
                               error=refusal.text("ja") if refusal else None)  # fmt: skip
    if request.form.get("decision") == "cancel":
        changes.discard(token)
        flash("変更を取りやめました。何も変わっていません。", "info")
        return redirect(url_for("dashboard.index"))
    seconds = current_app.config.get("MAMORI_CONFIRM_SECONDS")
    try:
        rev = actions.apply_config(wctx.ctx(), proposal.text, wctx.user().name, "web", proposal.comment,
                                   confirm_seconds=seconds, remote=wctx.remote())  # fmt: skip
    except MamoriError as exc:
        return render_template("settings/review.html", proposal=proposal, diff=svc.diff(proposal.text),
                               error=exc.text("ja")), 403 if isinstance(exc, ConfigRefused) else 400  # fmt: skip
    changes.discard(token)
    if seconds:
        flash(
            f"変更を適用しました（リビジョン {rev.id}）。問題がなければ {seconds // 60} 分以内に「確定」を押してください。押さないと自動で元に戻ります。",
            "warn",
        )
    else:
        flash(f"変更を適用しました（リビジョン {rev.id}）。", "ok")
    return redirect(url_for("settings.status"))


def _refusal(svc: Any, text: str, authority: frozenset[str]) -> ConfigRefused | None:
    """What applying would refuse now (the live config may have moved since the proposal was made)."""
    try:
        return svc.refusal(parse_config(text).model, authority)
    except ConfigError:
        return None


@bp.route("/status")
@requires("dashboard.view")
def status() -> Any:
    if not any(wctx.can(p) for p in EDIT_PERMISSIONS):
        wctx.audit("web.forbidden", {"path": request.path, "needs": "settings.edit"})
        abort(403)
    return render_template("settings/status.html", pending=core.service().pending())


@bp.route("/confirm", methods=["POST"])
@requires("dashboard.view")
def confirm() -> Any:
    if not any(wctx.can(p) for p in EDIT_PERMISSIONS):
        wctx.audit("web.forbidden", {"path": request.path, "needs": "settings.edit"})
        abort(403)
    rev = actions.confirm_config(wctx.ctx(), wctx.user().name, "web", remote=wctx.remote())
    flash(f"変更（リビジョン {rev.id}）を確定しました。", "ok")
    return redirect(url_for("dashboard.index"))


@bp.route("/rollback/<int:rev_id>", methods=["POST"])
@requires("settings.edit")
def rollback(rev_id: int) -> Any:
    token = changes.propose(_revision_text(rev_id), f"リビジョン {rev_id} に戻す", "settings.edit")
    return redirect(url_for("settings.review", token=token))


def _revision_text(rev_id: int) -> str:
    rev = core.service().revisions.get(rev_id)
    if rev is None:
        abort(404)
    return rev.config_text


@bp.route("/certificate", methods=["GET", "POST"])
@requires(WEB_MANAGE)
def certificate() -> Any:
    """Replace the self-signed certificate with the clinic's own (takes effect when the server restarts).
    web.manage (管理者 unless granted by name): whoever holds the key can read every sign-in to this page."""
    from webui.tls import cert_paths

    cert_path, _ = cert_paths(wctx.ctx().paths.keys_dir)
    if request.method == "POST":
        cert = request.files.get("cert")
        key = request.files.get("key")
        if cert is None or key is None:
            return render_template(
                "settings/certificate.html", error="証明書と秘密鍵の両方を選んでください。"
            ), 400
        try:
            # The daemon writes the key directory (webui.web_actions); bytes travel unchanged as latin-1.
            actions.call("web.install_certificate", cert_pem=cert.read(64 * 1024).decode("latin-1"),
                         key_pem=key.read(64 * 1024).decode("latin-1"), actor=wctx.user().name)  # fmt: skip
        except MamoriError as exc:
            return render_template("settings/certificate.html", error=exc.text("ja")), 400
        wctx.audit("web.certificate_replaced", {})
        flash("証明書を差し替えました。Mamori の再起動後に使われます。", "ok")
        return redirect(url_for("settings.certificate"))
    current = cert_path.read_text(encoding="ascii") if cert_path.exists() else None
    return render_template("settings/certificate.html", current=_describe(current))


def _describe(pem: str | None) -> dict[str, str] | None:
    if pem is None:
        return None
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem.encode())
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "until": show(cert.not_valid_after_utc.timestamp(), core.clinic_zone(), "%Y/%m/%d")}  # fmt: skip


@bp.route("/notify-test", methods=["POST"])
@requires(NOTIFICATIONS_MANAGE)
def notify_test() -> Any:
    """Send one test message on every configured channel and say, per channel, whether it went out.
    notifications.manage: the test sends the channels' secrets (SMTP password, LINE token) to their hosts, which
    only the daemon reads (webui.notify_actions)."""
    results = actions.call("notifications.test", actor=wctx.actor_name("web"))["results"]
    if not results:
        flash("お知らせの送り先がまだ設定されていません。", "warn")
        return redirect(url_for("settings.index"))
    wctx.audit("notifications.test", {"results": [(n, ok) for n, ok, _ in results]})
    for name, ok, text in results:
        flash(
            f"{name}: 送信しました。届いたか確認してください。"
            if ok
            else f"{name}: 送れませんでした（{text}）。",
            "ok" if ok else "error",
        )
    return redirect(url_for("settings.index"))
