"""Run the web UI: gunicorn (threads) over HTTPS only, plus a plain-HTTP listener that only redirects.

    python -m webui.serve --config /etc/mamori/config.yaml --state-dir /var/lib/mamori --bind 0.0.0.0:443 \
        [--http-bind 0.0.0.0:80] [--actions /var/lib/mamori/run/actions.sock]

The daemon (appliance.webserver) binds the sockets itself and passes them in as `--fd N` (HTTPS, repeatable)
and `--http-fd N` (the redirect), then runs this without any capability (appliance.unprivileged); `--bind`
and `--http-bind` are for a stand-alone server (tests, the lab's web UI fixtures). Which zones may reach it is
the firewall's job (cfg.web.zones, never wan or guest).
"""

from __future__ import annotations

import argparse
import logging
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from webui.actions import SocketActions
from webui.tls import CertReloader, cert_paths, ensure_certificate

log = logging.getLogger(__name__)
REDIRECT_TIMEOUT_S = 10.0
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")


class _Gunicorn(BaseApplication):
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings or key != "control_socket_disable":  # that one: gunicorn >= 25.1
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def ssl_context_factory(reloader: CertReloader) -> Any:
    """gunicorn asks for a context for every connection: hand it the reloader's, which follows the files
    (a renewed or uploaded certificate is served from the next connection on, no restart)."""

    def _ssl_context(conf: Any, default_factory: Any) -> Any:
        return reloader.context()

    return _ssl_context


def redirect_handler(https_port: int) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        """Answers every plain-HTTP request with a redirect to the same path over HTTPS, nothing else."""

        server_version = "Mamori"
        sys_version = ""
        timeout = REDIRECT_TIMEOUT_S  # a client that connects and says nothing does not keep its thread

        def _redirect(self) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0] if "]" not in (self.headers.get("Host") or "") \
                else (self.headers.get("Host") or "").split("]")[0] + "]"  # fmt: skip
            if not _HOST.match(host):
                host = str(self.server.server_address[0])  # type: ignore[index]
                host = f"[{host}]" if ":" in host else host
            path = self.path if self.path.startswith("/") and not self.path.startswith("//") else "/"
            port = "" if https_port == 443 else f":{https_port}"
            self.send_response(301)
            self.send_header("Location", f"https://{host}{port}{path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = _redirect

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http redirect: " + format, *args)

    return Redirect


class _QuietServer(ThreadingHTTPServer):
    """A client that resets or times out its connection is its own business: logged at debug level, not a
    traceback on stderr (socketserver's default) at every port scan; anything else is still an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # ConnectionResetError, BrokenPipeError, TimeoutError
            log.debug("http redirect: connection from %s ended: %s", client_address, exc)
        else:
            log.exception("http redirect: request from %s failed", client_address)


class _RedirectServer(_QuietServer):
    """The redirect server on a socket bound already (by the daemon): its family, its address."""

    def __init__(self, sock: socket.socket, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock


def start_redirect(bind: str, https_port: int, fd: int | None = None) -> ThreadingHTTPServer:
    """Serve the redirect on `bind` (host:port), or on the listening socket `fd` when given."""
    if fd is not None:
        server: ThreadingHTTPServer = _RedirectServer(socket.socket(fileno=fd), redirect_handler(https_port))
    else:
        host, port = bind.rsplit(":", 1)
        server = _QuietServer((host.strip("[]"), int(port)), redirect_handler(https_port))
    threading.Thread(target=server.serve_forever, name="http-redirect", daemon=True).start()
    return server


def _port(fd: int) -> int:
    """The port a listening socket passed in is bound to (left open: gunicorn takes it over)."""
    sock = socket.socket(fileno=fd)
    try:
        return sock.getsockname()[1]
    finally:
        sock.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webui.serve", description="Mamori web UI (HTTPS)")
    parser.add_argument("--config", type=Path, default=Paths().config)
    parser.add_argument("--state-dir", type=Path, default=Paths().state_dir)
    parser.add_argument("--bind", action="append", default=[], help="HTTPS address:port (repeatable)")
    parser.add_argument(
        "--http-bind", default="", help="plain-HTTP address:port that only redirects (optional)"
    )
    parser.add_argument(
        "--fd", type=int, action="append", default=[], help="a listening HTTPS socket passed in"
    )
    parser.add_argument(
        "--http-fd", type=int, default=None, help="a listening socket passed in for the redirect"
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--confirm-seconds",
        type=int,
        default=120,
        help="changes from the web UI revert unless confirmed within this time (0: no timer)",
    )
    parser.add_argument(
        "--actions",
        type=Path,
        default=None,
        help="the daemon's action socket: every change goes there (without it: run in this process, as root)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    paths = Paths(config=args.config, state_dir=args.state_dir)
    ctx = Context(paths=paths, db=Database(paths.db))
    from webui import create_app

    actions = SocketActions(args.actions) if args.actions else None
    app = create_app(ctx, confirm_seconds=args.confirm_seconds or None, actions=actions)
    cert, key = cert_paths(paths.keys_dir)
    if not (cert.exists() and key.exists()):  # a stand-alone server (tests); the daemon makes them first
        cert, key = ensure_certificate(paths.keys_dir)
    binds = [f"fd://{fd}" for fd in args.fd] or args.bind or ["0.0.0.0:443"]
    https_port = _port(args.fd[0]) if args.fd else int(binds[0].rsplit(":", 1)[1])
    if args.http_bind or args.http_fd is not None:
        start_redirect(args.http_bind, https_port, fd=args.http_fd)
    options = {
        "bind": binds, "workers": 1, "worker_class": "gthread", "threads": args.threads,
        "certfile": str(cert), "keyfile": str(key), "ssl_context": ssl_context_factory(CertReloader(cert, key)),
        "accesslog": "-", "errorlog": "-", "timeout": 60, "graceful_timeout": 5, "forwarded_allow_ips": "",
        # gunicorn's runtime control socket (under $HOME or $XDG_RUNTIME_DIR): nothing here manages the
        # server through it, and the web UI's account has no home to put it in
        "control_socket_disable": True,
    }  # fmt: skip
    _Gunicorn(app, options).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
