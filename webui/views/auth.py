"""Sign-in (password, then TOTP), TOTP enrolment on first sign-in, sign-out, and one's own password.

Failures of either factor count toward the account lockout (5 in a row -> 15 minutes) and toward the
per-address rate limit; every outcome is written to the audit log with the remote address.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from appliance.errors import MamoriError
from webui import context as wctx
from webui.accounts import MFA_ROLES, Account, new_totp_secret
from webui.qr import svg, totp_uri
from webui.security import csrf_token

bp = Blueprint("auth", __name__)
PENDING_SECONDS = 300
BAD_LOGIN = "ユーザー名またはパスワードが違います。"


def finish_login(account: Account) -> Any:
    """New session id on every sign-in (no fixation); a fresh CSRF token too. Returns to the page the
    signed-out request asked for when it is one of the app's own pages (webui.context.safe_next)."""
    nxt = wctx.safe_next(session.get("next"))
    session.clear()
    session["sid"] = wctx.accounts().open_session(account.name, wctx.remote())
    csrf_token()
    wctx.accounts().record_success(account.name, wctx.remote())
    wctx.audit("web.login", {"role": account.role}, actor=account.name)
    return redirect(nxt or url_for("dashboard.index"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        expired = session.pop("expired", False)
        return render_template("auth/login.html", expired=expired)
    store = wctx.accounts()
    name = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    if store.rate_limited(wctx.remote()):
        wctx.audit("web.login_rate_limited", {"user": name}, actor=name or "anonymous")
        return render_template(
            "auth/login.html",
            error="失敗が続いたため、しばらく受け付けません。15分ほど待ってからお試しください。",
        ), 429
    account = store.get(name)
    now = wctx.now()
    if account is not None and account.locked(now):
        wctx.audit("web.login_locked", {}, actor=name)
        return render_template("auth/login.html", error=_locked_text()), 403
    password_ok = store.verify_password(name, password)  # always hashed: timing does not reveal names
    if account is None or account.disabled or account.expired(now) or not password_ok:
        _fail(name, "password")
        return render_template("auth/login.html", error=BAD_LOGIN), 401
    nxt = wctx.safe_next(session.get("next"))
    session.clear()  # nothing of the signed-out session survives but the page to return to
    if nxt:
        session["next"] = nxt
    if account.totp_enabled:
        session["pending"] = {"name": name, "ts": now}
        return redirect(url_for("auth.totp"))
    if account.role in MFA_ROLES:
        session["enroll"] = {"name": name, "ts": now, "secret": new_totp_secret()}
        return redirect(url_for("auth.enroll"))
    return finish_login(account)


def _locked_text() -> str:
    return "このアカウントは、失敗が続いたため一時的にロックされています。15分後にもう一度お試しください。急ぐ場合は管理者に解除を依頼してください。"


def _fail(name: str, factor: str) -> None:
    locked = wctx.accounts().record_failure(name, wctx.remote())
    wctx.audit("web.login_failed", {"factor": factor}, actor=name or "anonymous")
    if locked:
        wctx.audit("web.lockout", {"minutes": 15}, actor=name)


def _pending(key: str) -> dict | None:
    pending = session.get(key)
    if not pending or wctx.now() - pending.get("ts", 0) > PENDING_SECONDS:
        return None
    return pending


@bp.route("/login/totp", methods=["GET", "POST"])
def totp() -> Any:
    pending = _pending("pending")
    if pending is None:
        session.pop("pending", None)
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/totp.html")
    store = wctx.accounts()
    account = store.get(pending["name"])
    if account is None or account.locked(wctx.now()):
        session.clear()
        return render_template("auth/login.html", error=_locked_text()), 403
    if not store.check_totp(account.name, request.form.get("code", "")):
        _fail(account.name, "totp")
        return render_template(
            "auth/totp.html",
            error="確認コードが違います。スマートフォンのアプリに表示されている6桁の数字を入力してください。",
        ), 401
    return finish_login(account)


@bp.route("/login/enroll", methods=["GET", "POST"])
def enroll() -> Any:
    """First sign-in of an admin or vendor account created by an administrator: set up the TOTP app."""
    pending = _pending("enroll")
    if pending is None:
        session.pop("enroll", None)
        return redirect(url_for("auth.login"))
    qr = svg(totp_uri(pending["secret"], pending["name"]))
    if request.method == "GET":
        return render_template("auth/enroll.html", qr=qr, secret=pending["secret"])
    from webui.accounts import verify_totp

    if verify_totp(pending["secret"], request.form.get("code", "").strip(), wctx.now()) is None:
        _fail(pending["name"], "totp_enroll")
        return render_template(
            "auth/enroll.html",
            qr=qr,
            secret=pending["secret"],
            error="確認コードが違います。もう一度お試しください。",
        ), 401
    store = wctx.accounts()
    store.set_totp(pending["name"], pending["secret"])
    wctx.audit("web.totp_enrolled", {}, actor=pending["name"])
    return finish_login(store.require(pending["name"]))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    sid = session.get("sid")
    if sid:
        user = wctx.user()
        wctx.accounts().close_session(sid)
        if user:
            wctx.audit("web.logout", {})
    session.clear()
    flash("ログアウトしました。", "info")
    return redirect(url_for("auth.login"))


@bp.route("/me", methods=["GET", "POST"])
def me() -> Any:
    """One's own account: change the password (every role)."""
    user = wctx.user()
    if user is None:
        return redirect(url_for("auth.login"))
    if request.method == "POST":
        store = wctx.accounts()
        current = request.form.get("current", "")
        new = request.form.get("new", "")
        if not store.verify_password(user.name, current):
            _fail(user.name, "password_change")
            return render_template("auth/me.html", error="今のパスワードが違います。"), 400
        if new != request.form.get("confirm", ""):
            return render_template(
                "auth/me.html", error="新しいパスワードが2回とも同じになっていません。"
            ), 400
        try:
            store.change_password(user.name, new)
        except MamoriError as exc:
            return render_template("auth/me.html", error=exc.text("ja")), 400
        wctx.audit("web.password_changed", {"user": user.name})
        flash("パスワードを変更しました。", "ok")
        return redirect(url_for("auth.me"))
    return render_template("auth/me.html")
