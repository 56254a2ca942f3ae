"""The daemon worker that answers Prometheus: GET /metrics on each `metrics.listen` address.

A small threading HTTP server per address inside the daemon (a scrape is a few database reads, every 15 s
or so: not worth a child process). At most MAX_CONCURRENT scrapes run at once (others get 503) and a
client that does not finish its request within REQUEST_TIMEOUT is dropped, so a misbehaving scraper
cannot tie up the daemon; at most MAX_CONNECTIONS connections are open at once (more are closed unread). Plain HTTP on purpose: the addresses are internal (validated) and the vendor's
management link is a WireGuard tunnel; `metrics.token` adds a bearer token.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from metrics.exposition import CONTENT_TYPE, ensure_token, exposition, token_ok
from metrics.model import Listen

log = logging.getLogger(__name__)
MAX_CONCURRENT = 2
MAX_CONNECTIONS = 8  # open connections (one thread each); more are closed at once
REQUEST_TIMEOUT = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ep: Listen, ctx: Context, cfg: MamoriConfig, token: str | None) -> None:
        self.address_family = socket.AF_INET6 if ep.version == 6 else socket.AF_INET
        self.ctx, self.cfg, self.token = ctx, cfg, token
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((ep.address, ep.port), _Handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """A thread per connection, but never more than MAX_CONNECTIONS: a LAN host opening thousands of slow
        connections must not pile threads up in the daemon that also runs the firewall and the IDS."""
        if not self.connections.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """A scraper that hung up (its own timeout on a loaded box) is no fault of the daemon: one debug line.
        Anything else goes to the daemon's log as one record; socketserver's default printed a traceback on
        stderr, i.e. in the daemon's log, for every reset connection."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("metrics client %s went away: %s", client_address[0], exc)
        else:
            log.error("metrics request from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "mamori-metrics"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics %s: " + format, self.client_address[0], *args)

    def _reply(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="mamori"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._reply(404, b"not found: try /metrics\n")
            return
        if not token_ok(self.server.token, self.headers.get("Authorization")):
            log.warning("metrics scrape from %s refused: no valid token", self.client_address[0])
            self._reply(401, b"a bearer token is required\n")
            return
        if not self.server.slots.acquire(blocking=False):
            self._reply(503, b"busy\n")
            return
        try:
            body = exposition(self.server.ctx, self.server.cfg)
        except Exception:  # the collector guards each section; this is the registry itself failing
            log.exception("metrics exposition failed")
            self._reply(500, b"internal error\n")
            return
        finally:
            self.server.slots.release()
        self._reply(200, body, CONTENT_TYPE)

    do_HEAD = do_GET


class MetricsWorker:
    """Serves every listen address until stopped; a bind that fails (the address not up yet) raises, and the
    daemon's supervisor retries with back-off."""

    name = "metrics"

    def __init__(self, ctx: Context, cfg: MamoriConfig) -> None:
        self.ctx, self.cfg = ctx, cfg

    def run(self, stop: threading.Event) -> None:
        token = ensure_token(self.ctx.paths) if self.cfg.metrics.token else None
        servers: list[_Server] = []
        try:
            for ep in self.cfg.metrics.endpoints():
                servers.append(_Server(ep, self.ctx, self.cfg, token))
        except OSError:
            for s in servers:
                s.server_close()
            raise
        threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5},
                                    name=f"metrics-{s.server_address[0]}", daemon=True) for s in servers]  # fmt: skip
        for t in threads:
            t.start()
        log.info("metrics served on %s", ", ".join(self.cfg.metrics.listen))
        try:
            stop.wait()
        finally:
            for s in servers:
                s.shutdown()
                s.server_close()
