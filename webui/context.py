"""Per-request helpers shared by every blueprint: the signed-in account, the audit log, the stores.

`requires(permission)` is the one gate on every route: not signed in -> the sign-in page; signed in but
not allowed -> 403, and the refusal is written to the audit log (a vendor probing outside his grant is
exactly what the clinic wants to see later).
"""

from __future__ import annotations

import functools
import logging
import time
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from appliance import audit as box_audit
from appliance.audit import AuditLog
from appliance.subsystem import Context
from webui.accounts import Account, AccountStore
from webui.permissions import permissions_of

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def ctx() -> Context:
    return current_app.config["MAMORI_CTX"]


def now() -> float:
    return current_app.config.get("MAMORI_CLOCK", time.time)()


def accounts() -> AccountStore:
    return AccountStore(ctx().db, clock=current_app.config.get("MAMORI_CLOCK", time.time))


def audit_log() -> AuditLog:
    return box_audit.audit_log(ctx())


def remote() -> str:
    return request.remote_addr or ""


def user() -> Account | None:
    return g.get("user")


def actor_name(fallback: str = "anonymous") -> str:
    """Who did it, for the audit log: the signed-in account's name (for the fleet API, the vendor account of
    the token), else `fallback`. The CLI's answer is appliance.actor.cli_actor."""
    account = user()
    return account.name if account else fallback


def audit(action: str, detail: dict[str, Any] | None = None, actor: str | None = None) -> None:
    """Record a web action; the actor is the signed-in account unless given (e.g. a failed sign-in)."""
    who = actor if actor is not None else actor_name()
    audit_log().record(who, action, detail or {}, source="web", remote=remote())


def can(permission: str) -> bool:
    account = user()
    return account is not None and permission in permissions_of(account)


# Pages a sign-in never returns to: the sign-in steps themselves, the wizard, files, the health probe.
_NO_RETURN = ("auth.", "setup.", "static", "health")


def safe_next(value: object) -> str | None:
    """The page to return to after sign-in, rebuilt with url_for from the route it matches; None if it is
    not a plain path of this app. `next` is the path a signed-out request asked for, but a path is also
    what an open redirect is made of (Werkzeug turns `/\\t/evil.example/` into `//evil.example/`), so
    nothing of the value itself is sent back: anything with a scheme, a host, a backslash or a control
    character (also percent-encoded), or that matches no GET route of the app, is refused."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 512:
        return None
    for text in (value, unquote(value)):
        parts = urlsplit(text)
        if parts.scheme or parts.netloc or text.startswith("//") or "\\" in text:
            return None
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
            return None
    adapter = current_app.url_map.bind("mamori.invalid")
    try:
        try:
            endpoint, args = adapter.match(value, method="GET")
        except RequestRedirect as moved:  # e.g. /alerts -> /alerts/: follow the app's own rule once
            endpoint, args = adapter.match(urlsplit(moved.new_url).path, method="GET")
    except HTTPException:  # no route (404), not a page (405), or a second redirect
        return None
    if endpoint.startswith(_NO_RETURN):
        return None
    return url_for(endpoint, **args)


def requires(permission: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if user() is None:
                session["next"] = request.path if request.method == "GET" else None
                return redirect(url_for("auth.login"))
            if not can(permission):
                audit("web.forbidden", {"path": request.path, "method": request.method, "needs": permission})
                abort(403)
            return view(*args, **kwargs)

        wrapped.permission = permission  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate
