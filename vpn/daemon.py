"""The VPN's long-running work in `mamori daemon`: the portal, the expiry clock, the tunnel monitor, the
connection log (what each tunnel opened through the box) and the notices to the clinic (a vendor
connected, a login locked).

Workers are rebuilt by the daemon whenever a new config revision goes live, so each holds its config.
The portal listens on the box's VPN address only (never on wan or lan), so it exists only inside tunnels.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

from waitress.server import create_server

from appliance import clockwatch
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from vpn.connlog import ConnLogWorker
from vpn.ddns_worker import DdnsWorker
from vpn.monitor import MonitorWorker
from vpn.notices import VpnNoticeWorker
from vpn.portal import PORTAL_PORT, create_portal_app
from vpn.reach import ReachWorker
from vpn.sessions import SessionManager
from vpn.wg import WgInterface

log = logging.getLogger(__name__)
EXPIRY_TICK_S = 1.0


class PortalWorker:
    name = "vpn-portal"

    def __init__(self, ctx: Context, cfg: MamoriConfig, port: int = PORTAL_PORT) -> None:
        self.ctx, self.cfg, self.port = ctx, cfg, port

    def run(self, stop: threading.Event) -> None:
        host = str(ipaddress.ip_interface(self.cfg.vpn.address).ip)
        iface = WgInterface(self.cfg.vpn.interface)
        deadline = time.monotonic() + 60
        while not iface.exists():  # the vpn subsystem creates it at apply; wait for it, bounded
            if stop.wait(0.5) or time.monotonic() > deadline:
                if stop.is_set():
                    return
                raise RuntimeError(f"{iface.name} does not exist; the portal cannot listen on {host}")
        app = create_portal_app(SessionManager(self.ctx, lambda: self.cfg), port=self.port)
        server = create_server(app, host=host, port=self.port, threads=4, ident="mamori-vpn")
        log.info("vpn portal on http://%s:%d/", host, self.port)
        serve_until(server, stop)


def serve_until(server, stop: threading.Event, tick: float = 0.5) -> None:
    """Serve waitress's loop in this thread until `stop`, then close it here too.

    Closing the listening socket from another thread while the loop sits in select() on it makes select
    fail with EBADF (a traceback in the daemon's log at every config change); so the loop runs in short
    rounds that look at `stop`, and every socket is closed by the thread that polls them.
    """
    try:
        while not stop.is_set():
            server.asyncore.loop(timeout=tick, map=server._map, use_poll=True, count=1)
    finally:
        server.task_dispatcher.shutdown(timeout=5)
        server.asyncore.close_all(server._map)


class ExpiryWorker:
    """Ends sessions at expiry, of disabled users and at the end of maintenance windows (and cuts them)."""

    name = "vpn-expiry"

    def __init__(self, ctx: Context, cfg: MamoriConfig, tick: float = EXPIRY_TICK_S) -> None:
        self.sessions = SessionManager(ctx, lambda: cfg)
        self.tick = tick

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.tick):
            clockwatch.settle()  # a clock step moves the deadlines first, so it never ends every session at once
            for s in self.sessions.expire_due():
                log.info("vpn session %d of %s ended and cut", s.id, s.user)


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list:
    if not cfg.vpn.enabled:
        return []
    iface = WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)
    return [
        PortalWorker(ctx, cfg),
        ExpiryWorker(ctx, cfg),
        MonitorWorker(ctx, iface),
        ConnLogWorker(ctx, cfg),
        VpnNoticeWorker(ctx, cfg),
        *([ReachWorker(ctx, cfg)] if cfg.vpn.probe else []),
        *([DdnsWorker(ctx, cfg)] if cfg.vpn.ddns else []),
    ]
