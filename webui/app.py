"""The Flask app factory: one blueprint per area, security middleware, the first-boot gate.

Order of the request pipeline: CSRF check on every state-changing request -> load the account from the
server-side session (idle timeout enforced there) -> while no administrator exists, every page leads to
the setup wizard -> the route's own permission gate (webui.context.requires).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from tempfile import SpooledTemporaryFile
from typing import IO, Any, cast

from flask import Flask, Request, current_app, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from appliance.area import load
from appliance.areas import hooks
from appliance.clock import show, wall
from appliance.errors import MamoriError
from appliance.subsystem import Context, Subsystem
from update.stage import DEFAULT_LIMIT as UPDATE_MAX_UPLOAD
from webui import context as wctx
from webui import security
from webui.accounts import ROLE_LABELS
from webui.actions import Actions, LocalActions
from webui.core import clinic_zone, idle_timeout_seconds, live_text
from webui.permissions import NAVIGATION, permissions_of
from webui.rules_upload import MAX_UPLOAD as RULES_MAX_UPLOAD

log = logging.getLogger(__name__)

# Blueprints that authenticate each request themselves with a bearer token and never read the session cookie
# (fleetapi.api): no cookie means no CSRF to guard against, and no sign-in page to send a program to.
TOKEN_BLUEPRINTS: tuple[str, ...] = ("fleetapi",)
# Endpoints that take a file larger than the 2 MB default (webui.security): the IDS rules archive.
LARGE_UPLOADS: dict[str, int] = {
    "settings.ids_rules": RULES_MAX_UPLOAD + 1024 * 1024,  # + form overhead
    "update.upload": UPDATE_MAX_UPLOAD + 1024 * 1024,  # a software update bundle (update.web)
}
# Endpoints reachable without an account (the wizard guards its own steps).
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login", "auth.totp", "auth.logout", "auth.enroll", "health"})


class MamoriRequest(Request):
    """Uploads larger than 500 KB spool to `<state>/uploads` instead of /tmp, which on a small box is often
    RAM: a 64 MB rules archive belongs on the disk. The spool file has no name and vanishes when closed."""

    def _get_file_stream(
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:  # fmt: skip
        spool = wctx.ctx().paths.state_dir / "uploads"
        spool.mkdir(mode=0o700, exist_ok=True)
        if not upload_fits(total_content_length, shutil.disk_usage(spool).free):
            raise InsufficientStorage()
        return cast(IO[bytes], SpooledTemporaryFile(max_size=500 * 1024, mode="rb+", dir=spool))


# Left free beside a spooled upload: the database and the audit log share that disk.
UPLOAD_SPACE_MARGIN = 64 * 1024 * 1024


class InsufficientStorage(HTTPException):
    """507: the state disk has no room for this upload (werkzeug has no class for it)."""

    code = 507
    description = "not enough free space on the box for this upload"


def upload_fits(total_content_length: int | None, free_bytes: int) -> bool:
    """Whether an upload of this size may be spooled to the state disk. Refused before a byte is written, so
    a large upload (a 1 GB update bundle) cannot fill the partition the database and audit log live on.
    An unknown length passes: the per-route size limits (LARGE_UPLOADS) still bound it."""
    return total_content_length is None or total_content_length + UPLOAD_SPACE_MARGIN <= free_bytes


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: at most SQLite's largest integer, so a URL with a longer number is a plain
    404 rather than an OverflowError (a 500 page) in the query that would look it up."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(
    ctx: Context,
    testing: bool = False,
    *,
    subsystems: Sequence[Subsystem] | None = None,
    clock: Callable[[], float] | None = None,
    confirm_seconds: int | None = 120,
    actions: Actions | None = None,
) -> Flask:
    """Build the web app for one box. `subsystems`/`clock` are for tests; production passes neither.
    `actions`: where changes go (webui.actions); by default the allow-list runs in this process."""
    app = Flask(__name__)
    app.url_map.converters["int"] = RowIdConverter
    app.request_class = MamoriRequest
    ctx.paths.ensure()
    ctx.db.migrate()
    app.config.update(
        TESTING=testing,
        MAMORI_CTX=ctx,
        MAMORI_SUBSYSTEMS=subsystems,
        MAMORI_CLOCK=clock or wall,
        MAMORI_CONFIRM_SECONDS=confirm_seconds,
        MAMORI_ACTIONS=actions or LocalActions(ctx, subsystems, clock),
    )
    security.install(app, ctx.paths.keys_dir)
    app.jinja_env.globals.update(can=wctx.can, role_labels=ROLE_LABELS, navigation=_navigation)
    app.jinja_env.filters["jst"] = _format_time
    _register_blueprints(app)
    app.before_request(_before_request)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(MamoriError, _mamori_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.add_url_rule("/healthz", "health", lambda: ("ok", 200, {"Content-Type": "text/plain"}))
    return app


def _register_blueprints(app: Flask) -> None:
    # The settings pages add their routes to the one settings blueprint (webui/views/settings_bp.py) when
    # imported: imported here, before it is registered below (they do not import each other).
    from webui.views import (  # noqa: F401
        accounts_admin,
        alerts,
        auditlog,
        auth,
        dashboard,
        devices,
        firewall,
        settings,
        settings_backup,
        settings_ids,
        settings_restore,
        settings_ssh,
        settings_time,
        setup,
        vpn,
    )

    for module in (
        auth,
        setup,
        dashboard,
        alerts,
        firewall,
        vpn,
        devices,
        settings,
        auditlog,
        accounts_admin,
    ):
        app.register_blueprint(module.bp)
    for name in hooks("blueprints"):  # other areas' pages (appliance.areas), gated by webui.context.requires
        app.register_blueprint(load(name).bp)


def _before_request() -> Any:
    if request.endpoint == "static" or request.blueprint in TOKEN_BLUEPRINTS:
        return None
    if request.endpoint in LARGE_UPLOADS and session.get("sid"):
        # Read before the body is parsed (the CSRF check parses it); only for a signed-in session, so an
        # anonymous client still meets the 2 MB cap. The view checks the permission as usual.
        request.max_content_length = LARGE_UPLOADS[request.endpoint]
    if request.method not in security.SAFE_METHODS and not security.csrf_ok():
        wctx.audit("web.csrf_rejected", {"path": request.path})
        return render_template("errors/csrf.html"), 400
    g.user = None
    sid = session.get("sid")
    if sid:
        g.user = wctx.accounts().touch_session(sid, idle_timeout_seconds())
        if g.user is None:
            session.clear()
            session["expired"] = True
    store = wctx.accounts()
    if not store.admin_exists():
        if not (request.endpoint or "").startswith("setup.") and request.endpoint != "health":
            return redirect(url_for("setup.start"))
        return None
    endpoint = request.endpoint or ""
    if g.user is None and endpoint not in PUBLIC_ENDPOINTS and not endpoint.startswith("setup."):
        session["next"] = request.path if request.method == "GET" else None
        return redirect(url_for("auth.login"))
    if g.user is not None and g.user.role == "vendor":
        # A vendor works for the clinic under its eyes: every request, reading included, is recorded.
        wctx.audit("web.vendor_request", {"method": request.method, "path": request.full_path.rstrip("?")})
    if g.user is not None and g.user.role == "admin" and not endpoint.startswith(("setup.", "auth.")):
        if not _setup_finished():
            return redirect(url_for("setup.clinic"))
    return None


def _setup_finished() -> bool:
    """The wizard ran, or the box already had a config before the web UI first started (an upgrade, the lab)."""
    from webui.views.setup import setup_done

    return setup_done() or live_text() is not None


def _navigation() -> list[tuple[str, str]]:
    user = wctx.user()
    if user is None:
        return []
    allowed = permissions_of(user)
    views = current_app.view_functions
    return [
        (label, endpoint) for label, endpoint, perm in NAVIGATION if perm in allowed and endpoint in views
    ]


TOO_LARGE = (
    "送られたファイルが大きすぎます。何も変更していません。ファイルが正しいか保守業者に確認してください。"
)
NO_SPACE = "本機の記録用の空き容量が足りないため、ファイルを受け取れませんでした。何も変更していません。保守業者にご連絡ください。"


def _http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    template = {403: "errors/403.html", 404: "errors/404.html"}.get(code, "errors/generic.html")
    message = {413: TOO_LARGE, 507: NO_SPACE}.get(code)
    return render_template(template, code=code, message=message), code


def _mamori_error(exc: MamoriError) -> Any:
    log.warning("user-facing error on %s: %s", request.path, exc.text("en"))
    return render_template("errors/generic.html", code=400, message=exc.text("ja")), 400


def _unexpected_error(exc: Exception) -> Any:
    """A bug must not show a stack trace or an English server page: log it, say it calmly in Japanese."""
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unexpected error on %s %s", request.method, request.path)
    return render_template("errors/generic.html", code=500), 500


def _format_time(ts: float | None) -> str:
    """Clinic time (clinic.timezone, whatever the box's own zone) as clinics write it: 2026/11/26 09:15."""
    return show(ts, clinic_zone(), empty="—")
