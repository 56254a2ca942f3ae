"""Sign-in (password, then TOTP), TOTP enrolment on first sign-in, sign-out, and one's own password.

Failures of any factor are throttled per name and address with growing delays (webui.throttle), never by
locking the account: a wrong password typed at another PC must not keep the owner out, and a session
already open stays open. A try that must wait gets the same answer (429, same text) whether the name exists
or not, as a wrong password does (401). Every outcome is written to the audit log with the remote address;
the actor is the account, or "unknown" when no account has the name typed (people type passwords there).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from appliance.errors import MamoriError
from webui import context as wctx
from webui.accounts import ENROL_SECONDS, MFA_ROLES, Account
from webui.qr import svg, totp_uri
from webui.security import csrf_token
from webui.throttle import Hold
from webui.throttle import current as throttle

bp = Blueprint("auth", __name__)
PENDING_SECONDS = 300
BAD_LOGIN = "ユーザー名またはパスワードが違います。"
UNKNOWN = "unknown"  # the audit actor of a try whose name is no account's


def finish_login(account: Account) -> Any:
    """New session id on every sign-in (no fixation); a fresh CSRF token too. Returns to the page the
    signed-out request asked for when it is one of the app's own pages (webui.context.safe_next)."""
    nxt = wctx.safe_next(session.get("next"))
    session.clear()
    session["sid"] = wctx.accounts().open_session(account.name, wctx.remote())
    csrf_token()
    wctx.accounts().record_login(account.name)
    throttle().success(account.name, wctx.remote())
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
    account = store.get(name)
    now = wctx.now()
    held = _held(name, account is not None)
    if held:
        return render_template("auth/login.html", error=held), 429
    password_ok = store.verify_password(name, password)  # always hashed: timing does not reveal names
    if account is None or account.disabled or account.expired(now) or not password_ok:
        _fail(name, "password", account is not None)
        return render_template("auth/login.html", error=BAD_LOGIN), 401
    nxt = wctx.safe_next(session.get("next"))
    session.clear()  # nothing of the signed-out session survives but the page to return to
    if nxt:
        session["next"] = nxt
    if account.totp_enabled:
        session["pending"] = {"name": name, "ts": now}
        return redirect(url_for("auth.totp"))
    if account.role in MFA_ROLES:
        session["enroll"] = {"name": name, "ts": now, "token": store.begin_enrolment(name)[0]}
        return redirect(url_for("auth.enroll"))
    return finish_login(account)


def _held(name: str, exists: bool) -> str | None:
    """The text to show when this try must wait (audited), else None. Checked before any password."""
    hold = throttle().hold(name, wctx.remote())
    if hold is None:
        return None
    action = "web.login_rate_limited" if hold.scope == "address" else "web.login_locked"
    wctx.audit(action, _hold_detail(hold), actor=name if exists else UNKNOWN)
    return held_text(hold)


def held_text(hold: Hold) -> str:
    return (
        "ログインの失敗が続いたため、この端末からはしばらく受け付けません。"
        f"{hold.minutes}分ほど待ってからお試しください。急ぐ場合は、いつも使っている端末からお試しください。"
    )


def _hold_detail(hold: Hold) -> dict[str, Any]:
    return {"scope": hold.scope, "seconds": hold.seconds}


def _fail(name: str, factor: str, exists: bool = True) -> None:
    """A failed factor: throttled per name and address, audited under the account or as "unknown"."""
    started = throttle().failure(name, wctx.remote())
    actor = name if exists else UNKNOWN
    wctx.audit("web.login_failed", {"factor": factor}, actor=actor)
    for hold in started:  # a run of failures starts to be held back: worth its own line in the log
        wctx.audit("web.lockout", _hold_detail(hold), actor=actor)


def _pending(key: str, max_age: float = PENDING_SECONDS) -> dict | None:
    pending = session.get(key)
    if not pending or wctx.now() - pending.get("ts", 0) > max_age:
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
    if account is None:
        session.clear()
        return redirect(url_for("auth.login"))
    held = _held(account.name, True)
    if held:
        return render_template("auth/totp.html", error=held), 429
    if not store.check_totp(account.name, request.form.get("code", "")):
        _fail(account.name, "totp")
        return render_template(
            "auth/totp.html",
            error="確認コードが違います。スマートフォンのアプリに表示されている6桁の数字を入力してください。",
        ), 401
    return finish_login(account)


@bp.route("/login/enroll", methods=["GET", "POST"])
def enroll() -> Any:
    """First sign-in of an admin or vendor account created by an administrator: set up the TOTP app.
    The seed waits on the server (AccountStore.begin_enrolment); the session only holds its token."""
    pending = _pending("enroll", ENROL_SECONDS)
    store = wctx.accounts()
    seed = store.pending_enrolment(pending["token"]) if pending else None
    if pending is None or seed is None or seed[0] != pending["name"]:
        session.pop("enroll", None)
        return redirect(url_for("auth.login"))
    name, secret = seed
    page = {"qr": svg(totp_uri(secret, name)), "secret": secret}
    if request.method == "GET":
        return render_template("auth/enroll.html", **page)
    held = _held(name, True)
    if held:
        return render_template("auth/enroll.html", error=held, **page), 429
    if store.complete_enrolment(pending["token"], request.form.get("code", "")) is None:
        _fail(name, "totp_enroll")
        return render_template(
            "auth/enroll.html", error="確認コードが違います。もう一度お試しください。", **page
        ), 401
    wctx.audit("web.totp_enrolled", {}, actor=name)
    return finish_login(store.require(name))


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
        held = _held(user.name, True)
        if held:
            return render_template("auth/me.html", error=held), 429
        if not store.verify_password(user.name, current):
            _fail(user.name, "password_change")
            return render_template("auth/me.html", error="今のパスワードが違います。"), 400
        if new != request.form.get("confirm", ""):
            return render_template(
                "auth/me.html", error="新しいパスワードが2回とも同じになっていません。"
            ), 400
        try:
            store.change_password(user.name, new, keep_sid=session.get("sid", ""))
        except MamoriError as exc:
            return render_template("auth/me.html", error=exc.text("ja")), 400
        wctx.audit("web.password_changed", {"user": user.name})
        flash("パスワードを変更しました。ほかの端末やブラウザーでのログインは終わりました。", "ok")
        return redirect(url_for("auth.me"))
    return render_template("auth/me.html")
