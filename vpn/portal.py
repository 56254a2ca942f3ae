"""The VPN portal: the one page a connected device can reach before its user signs in (password + TOTP).

Served on the box's VPN address, port `PORTAL_PORT` (the firewall opens exactly that from the VPN zone), by
a process of its own without capabilities, database or config (vpn.portal_serve): what it shows and what it
does, the daemon answers and does (vpn.portal_view, vpn.portal_actions). Plain Japanese, one column, large
inputs: it is used on a phone. The user is identified by the tunnel address of the request (`REMOTE_ADDR`;
no proxy headers are trusted), the form proves it. Form input comes from the network: lengths are capped
and nothing from it is echoed back.

The portal is plain HTTP, so a page the doctor opens elsewhere could DNS-rebind its own name to the
portal's address and post to it (log him out, or lock him with wrong sign-ins). Every request must
therefore name the portal's own address as its Host (with or without the port), and a POST that says
where it comes from (Origin, or Referer when there is no Origin) must come from the portal itself.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from typing import Protocol
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.clock import show
from appliance.errors import MamoriError
from vpn.policy import REASONS, Decision
from vpn.portal_view import PortalSite, PortalView

log = logging.getLogger(__name__)

try:  # the firewall owns the port its rules open from the VPN zone
    from firewall.render import VPN_PORTAL_PORT as PORTAL_PORT
except ImportError:  # an image without the firewall area
    PORTAL_PORT = 8443

bp = Blueprint("vpn_portal", __name__, template_folder="templates")


class PortalSessions(Protocol):
    """What the pages use: vpn.portal_view.LocalPortal in-process (tests, and the daemon behind the actions),
    or vpn.portal_serve.DaemonPortal in the portal's own process (every answer from the daemon)."""

    def site(self) -> PortalSite: ...

    def view(self, remote_ip: str) -> PortalView: ...

    def sign_in(self, remote_ip: str, password: str, code: str) -> Decision: ...

    def logout(self, remote_ip: str) -> int:
        """How many sessions of the address ended."""
        ...


def _manager() -> PortalSessions:
    return current_app.extensions["mamori_vpn_sessions"]


def _own_hosts() -> frozenset[str]:
    """The Host values that name this portal: its VPN addresses, bare or with the port it listens on."""
    port = current_app.config["MAMORI_PORTAL_PORT"]
    hosts: set[str] = set()
    for address in _manager().site().addresses:
        ip = ipaddress.ip_interface(address).ip
        host = str(ip) if ip.version == 4 else f"[{ip}]"
        hosts |= {host, f"{host}:{port}"}
    return frozenset(hosts)


@bp.before_request
def _same_portal() -> tuple[str, int, dict[str, str]] | None:
    """Refuse a request for another name (DNS rebinding) and a POST sent from another site's page."""
    hosts = _own_hosts()
    ip = request.remote_addr or ""
    if request.headers.get("Host", "").lower() not in hosts:
        log.warning("vpn portal: request from %s for another host refused", ip)
        return _refused(
            "このアドレスでは開けません。VPN につないだまま、医院から案内されたアドレスで開いてください。",
            421,
        )
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin is None and request.headers.get("Referer") is not None:
            referer = urlsplit(request.headers["Referer"])
            origin = f"{referer.scheme}://{referer.netloc}"
        if origin is not None and origin.lower() not in {f"http://{h}" for h in hosts}:
            log.warning("vpn portal: POST from %s sent by another site's page refused", ip)
            return _refused(
                "ほかのページからの送信は受け付けません。この画面を開き直してからお試しください。", 403
            )
    return None


@bp.errorhandler(MamoriError)
def _daemon_unreachable(exc: MamoriError) -> tuple[str, int, dict[str, str]]:
    """Every page asks the daemon (vpn.portal_view): when it cannot answer, say so plainly."""
    log.error("vpn portal: the daemon did not answer: %s", exc.text("en"))
    return _refused("いまこの画面を表示できません。しばらくしてから開き直してください。", 503)


def _refused(text: str, status: int) -> tuple[str, int, dict[str, str]]:
    return text, status, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}


def _csrf() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _csrf_ok() -> bool:
    sent = request.form.get("csrf", "")[:64]
    return bool(sent) and hmac.compare_digest(sent, session.get("csrf", ""))


def _page(
    message: str = "", ok: bool = False, status: int = 200, view: PortalView | None = None
) -> tuple[str, int]:
    mgr = _manager()
    if view is None:
        view = mgr.view(request.remote_addr or "")
    site = mgr.site()
    until = show(view.expires, site.timezone, "%m月%d日 %H:%M") if view.expires is not None else ""
    html = render_template(
        "vpn/portal.html", clinic=site.clinic, known=bool(view.user_label), signed_in=view.expires is not None,
        until=until, csrf=_csrf(), user_label=view.user_label, message=message, ok=ok,
    )  # fmt: skip
    return html, status


def _failed(message: str) -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    """A 503 saying what could not be done: on the page when the daemon still answers (e.g. the firewall
    refused an admission), as plain text when it does not."""
    try:
        return _page(message, status=503)
    except MamoriError:
        return _refused(message, 503)


@bp.get("/")
def index() -> tuple[str, int]:
    return _page()


@bp.post("/login")
def login() -> tuple[str, int] | tuple[str, int, dict[str, str]] | Response:
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
        return _failed("いまサインインを完了できませんでした。医院の担当者にお知らせください。")
    if decision.allowed:
        return redirect(url_for("vpn_portal.index"))
    status = 403 if decision.reason in ("no_window", "outside_hours", "disabled", "unknown_device") else 401
    return _page(REASONS[decision.reason][0], status=status)


@bp.post("/logout")
def logout() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    if not _csrf_ok():
        return _page("画面を開き直してからもう一度お試しください。", status=400)
    mgr = _manager()
    ip = request.remote_addr or ""
    try:
        ended = mgr.logout(ip)
    except MamoriError as exc:  # the daemon could not be asked: nothing ended, say so
        log.error("vpn logout could not be completed: %s", exc.text("en"))
        return _failed("いまログアウトを完了できませんでした。しばらくしてからもう一度お試しください。")
    view = mgr.view(ip)
    if not ended and view.cutting:
        # the kernel refused the cut: say so rather than "not signed in"; the daemon keeps retrying
        return _page(
            "接続の切断を処理中です。しばらくしてから画面を開き直してください。", status=503, view=view
        )
    return _page("接続を終えました。" if ended else "サインインしていません。", ok=bool(ended), view=view)


def create_portal_app(manager: PortalSessions, port: int = PORTAL_PORT) -> Flask:
    """The portal for `manager`'s box, answering as its VPN address on `port` (the Host it accepts)."""
    app = Flask(__name__)
    # A fresh key per start: a portal restart only means signing the form again, never a lost session
    # (sessions live in the database, the cookie only carries the CSRF token).
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict", MAX_CONTENT_LENGTH=8192)
    app.config["MAMORI_PORTAL_PORT"] = port
    app.extensions["mamori_vpn_sessions"] = manager
    app.register_blueprint(bp)
    return app
