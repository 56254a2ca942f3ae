"""The VPN portal: the one page a connected device can reach before its user signs in (password + TOTP).

Served by the daemon on the box's VPN address, port `PORTAL_PORT` (the firewall opens exactly that from
the VPN zone). Plain Japanese, one column, large inputs: it is used on a phone. The user is identified
by the tunnel address of the request (`REMOTE_ADDR`; no proxy headers are trusted), the form proves it.
Form input comes from the network: lengths are capped and nothing from it is echoed back.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.errors import MamoriError
from vpn.policy import REASONS
from vpn.sessions import SessionManager

log = logging.getLogger(__name__)

try:  # the firewall owns the port its rules open from the VPN zone
    from firewall.render import VPN_PORTAL_PORT as PORTAL_PORT
except ImportError:  # an image without the firewall area
    PORTAL_PORT = 8443

bp = Blueprint("vpn_portal", __name__, template_folder="templates")


def _manager() -> SessionManager:
    return current_app.extensions["mamori_vpn_sessions"]


def _csrf() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _csrf_ok() -> bool:
    sent = request.form.get("csrf", "")[:64]
    return bool(sent) and hmac.compare_digest(sent, session.get("csrf", ""))


def _page(message: str = "", ok: bool = False, status: int = 200) -> tuple[str, int]:
    mgr = _manager()
    ip = request.remote_addr or ""
    dev, user = mgr.who(ip)
    current = mgr.current(ip) if dev else None
    cfg = mgr.config()
    until = ""
    if current:
        local = dt.datetime.fromtimestamp(current.expires, ZoneInfo(cfg.clinic.timezone))
        until = local.strftime("%m月%d日 %H:%M")
    html = render_template(
        "vpn/portal.html", clinic=cfg.clinic.name, user=user, session=current, until=until, csrf=_csrf(),
        user_label=(user.display_name or user.name) if user else "", message=message, ok=ok,
    )  # fmt: skip
    return html, status


@bp.get("/")
def index() -> tuple[str, int]:
    return _page()


@bp.post("/login")
def login() -> tuple[str, int] | Response:
    if not _csrf_ok():
        return _page("画面を開き直してからもう一度お試しください。", status=400)
    try:
        decision = _manager().sign_in(
            request.remote_addr or "",
            request.form.get("password", "")[:256],
            request.form.get("code", "")[:16],
        )
    except MamoriError as exc:  # e.g. the firewall refused the admission: say so, admit nothing
        log.error("vpn sign-in could not be completed: %s", exc.text("en"))
        return _page("いまサインインを完了できませんでした。医院の担当者にお知らせください。", status=503)
    if decision.allowed:
        return redirect(url_for("vpn_portal.index"))
    status = 403 if decision.reason in ("no_window", "outside_hours", "disabled", "unknown_device") else 401
    return _page(REASONS[decision.reason][0], status=status)


@bp.post("/logout")
def logout() -> tuple[str, int]:
    if not _csrf_ok():
        return _page("画面を開き直してからもう一度お試しください。", status=400)
    mgr = _manager()
    ip = request.remote_addr or ""
    ended = mgr.logout(ip)
    dev, _ = mgr.who(ip)
    if not ended and dev and any(s.tunnel_ip == dev.ip4 for s in mgr.pending()):
        # the kernel refused the cut: say so rather than "not signed in"; the daemon keeps retrying
        return _page("接続の切断を処理中です。しばらくしてから画面を開き直してください。", status=503)
    return _page("接続を終えました。" if ended else "サインインしていません。", ok=bool(ended))


def create_portal_app(manager: SessionManager) -> Flask:
    app = Flask(__name__)
    # A fresh key per start: a portal restart only means signing the form again, never a lost session
    # (sessions live in the database, the cookie only carries the CSRF token).
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict", MAX_CONTENT_LENGTH=8192)
    app.extensions["mamori_vpn_sessions"] = manager
    app.register_blueprint(bp)
    return app
