"""HTTP hardening: security headers, CSRF tokens, the session secret.

CSP allows scripts and styles only from the box itself: no inline script, no inline style, no CDN. The
CSRF token is per session (secrets.token_urlsafe), compared in constant time, required on every
state-changing request; SameSite=Strict cookies are a second line, not the only one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask, Response, abort, request, session

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def load_secret_key(keys_dir: Path) -> bytes:
    """The cookie-signing key, created once so sessions survive a restart of the web server. On a box the
    daemon makes it before the web UI starts (appliance.child_access): the web UI cannot write keys/."""
    path = keys_dir / "web_secret.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        return key


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return bool(expected) and secrets.compare_digest(str(expected), str(given))


def set_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Strict-Transport-Security"] = "max-age=31536000"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask, keys_dir: Path) -> None:
    app.secret_key = load_secret_key(keys_dir)
    app.config.update(
        SESSION_COOKIE_NAME="__Host-mamori",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.after_request(set_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token


def reject_csrf() -> None:
    abort(400, description="csrf")
