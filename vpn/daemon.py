"""The VPN's long-running work in `mamori daemon`: the portal, the expiry clock, the tunnel monitor, the
connection log (what each tunnel opened through the box) and the notices to the clinic (a vendor
connected, a login locked).

Workers are rebuilt by the daemon whenever a new config revision goes live, so each holds its config.
The portal listens on the box's VPN address only (never on wan or lan), so it exists only inside tunnels.
It is a process of its own without capabilities (vpn.portal_serve): its worker here binds the address,
starts it with the socket (appliance.unprivileged), restarts it with back-off and stops it with its
generation; its sign-ins and logouts come back to the daemon as actions (vpn.portal_actions).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading
import time

from appliance import child_access, clockwatch, unprivileged
from appliance.actions.server import socket_path
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from vpn.connlog import ConnLogWorker
from vpn.ddns_worker import DdnsWorker
from vpn.monitor import MonitorWorker
from vpn.notices import VpnNoticeWorker
from vpn.portal import PORTAL_PORT
from vpn.reach import ReachWorker
from vpn.sessions import SessionManager
from vpn.wg import WgInterface

log = logging.getLogger(__name__)
EXPIRY_TICK_S = 1.0
PORTAL_MAX_BACKOFF = 30.0


class PortalWorker:
    name = "vpn-portal"

    def __init__(self, ctx: Context, cfg: MamoriConfig, port: int = PORTAL_PORT, poll: float = 0.5) -> None:
        self.ctx, self.cfg, self.port, self.poll = ctx, cfg, port, poll

    def run(self, stop: threading.Event) -> None:
        host = str(ipaddress.ip_interface(self.cfg.vpn.address).ip)
        iface = WgInterface(self.cfg.vpn.interface)
        deadline = time.monotonic() + 60
        while not iface.exists():  # the vpn subsystem creates it at apply; wait for it, bounded
            if stop.wait(0.5) or time.monotonic() > deadline:
                if stop.is_set():
                    return
                raise RuntimeError(f"{iface.name} does not exist; the portal cannot listen on {host}")
        sock = unprivileged.listen(f"{host}:{self.port}")
        # -I: never import from the working directory (a folder named vpn there would run in the portal).
        argv = [sys.executable, "-I", "-m", "vpn.portal_serve", "--actions", str(socket_path(self.ctx)),
                "--fd", str(sock.fileno())]  # fmt: skip
        child = None
        backoff = 1.0
        try:
            while not stop.is_set():
                account, groups = child_access.prepare(self.ctx.paths, "portal")
                child = unprivileged.start(
                    argv, [sock.fileno()], self.ctx.paths.run_dir / "vpn-portal.log", account, groups
                )
                started = time.monotonic()
                log.info("vpn portal started (pid %d) on http://%s:%d/", child.pid, host, self.port)
                while child.poll() is None and not stop.wait(self.poll):
                    pass
                if stop.is_set():
                    break
                if time.monotonic() - started > 60:  # it had been running well: start over
                    backoff = 1.0
                log.error("vpn portal exited with %s; restarting in %.0f s", child.returncode, backoff)
                if stop.wait(backoff):
                    break
                backoff = min(backoff * 2, PORTAL_MAX_BACKOFF)
        finally:
            unprivileged.stop(child, timeout=8)  # within the daemon's wait for a generation to stop
            sock.close()


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
