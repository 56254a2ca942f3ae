"""The VPN portal's own process: waitress on a listening socket the daemon bound and passed in.

    python -m vpn.portal_serve --config C --state-dir S --actions RUN/actions.sock --fd N

The daemon (vpn.daemon.PortalWorker) binds the box's VPN address, starts this without any capability
(appliance.unprivileged), restarts it with back-off if it dies and stops it (SIGTERM) with its worker
generation, so the portal always serves the live revision's config, read here at start. The portal reads
the sessions from the database itself; a sign-in and a logout are the daemon's (vpn.portal_actions, over
the action socket): this process cannot change the firewall.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from pathlib import Path

from waitress.server import create_server

from appliance.config.model import MamoriConfig
from appliance.paths import Paths
from appliance.revisions import live_config
from appliance.storage import Database
from appliance.subsystem import Context
from vpn.model import VpnUser
from vpn.policy import Decision
from vpn.portal import create_portal_app
from vpn.sessions import Session, SessionManager
from vpn.store import Device
from webui.actions import Actions, SocketActions, call_with

log = logging.getLogger(__name__)


class DaemonSessions:
    """What the portal pages use of the sessions: read here (`reader`, the database), changed by the daemon
    through `actions` (vpn.portal_actions)."""

    def __init__(self, reader: SessionManager, actions: Actions) -> None:
        self.reader = reader
        self.actions = actions

    def config(self) -> MamoriConfig:
        return self.reader.config()

    def who(self, remote_ip: str) -> tuple[Device | None, VpnUser | None]:
        return self.reader.who(remote_ip)

    def current(self, remote_ip: str) -> Session | None:
        return self.reader.current(remote_ip)

    def pending(self) -> list[Session]:
        return self.reader.pending()

    def sign_in(self, remote_ip: str, password: str, code: str) -> Decision:
        result = call_with(
            self.actions, "vpn.portal.sign_in", remote=remote_ip[:64], password=password[:256], code=code[:16]
        )
        return Decision(bool(result["allowed"]), str(result["reason"]), float(result.get("expires", 0.0)))

    def logout(self, remote_ip: str) -> int:
        """How many sessions of the address ended (0: none was open, or its cut failed and is retried)."""
        return int(call_with(self.actions, "vpn.portal.logout", remote=remote_ip[:64])["ended"])


def serve_until(server, stop: threading.Event, tick: float = 0.5) -> None:
    """Serve waitress's loop in this thread until `stop`, then close it here too.

    Closing the listening socket from another thread while the loop sits in select() on it makes select
    fail with EBADF (a traceback in the log at every stop); so the loop runs in short rounds that look at
    `stop`, and every socket is closed by the thread that polls them.
    """
    try:
        while not stop.is_set():
            server.asyncore.loop(timeout=tick, map=server._map, use_poll=True, count=1)
    finally:
        server.task_dispatcher.shutdown(timeout=5)
        server.asyncore.close_all(server._map)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpn.portal_serve", description="Mamori VPN portal")
    parser.add_argument("--config", type=Path, default=Paths().config)
    parser.add_argument("--state-dir", type=Path, default=Paths().state_dir)
    parser.add_argument("--actions", type=Path, required=True, help="the daemon's action socket")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket the daemon bound")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    paths = Paths(config=args.config, state_dir=args.state_dir)
    ctx = Context(paths=paths, db=Database(paths.db))
    cfg = live_config(ctx.db)
    if cfg is None or not cfg.vpn.enabled:
        log.error("no live revision with the VPN enabled: nothing to serve")
        return 2
    sock = socket.socket(fileno=args.fd)
    host, port = sock.getsockname()[:2]
    sessions = DaemonSessions(SessionManager(ctx, lambda: cfg), SocketActions(args.actions))
    app = create_portal_app(sessions, port=port)
    server = create_server(app, sockets=[sock], threads=4, ident="mamori-vpn")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("vpn portal on http://%s:%d/", host, port)
    serve_until(server, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
