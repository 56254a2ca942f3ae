"""The VPN portal's own process: waitress on a listening socket the daemon bound and passed in.

    python -m vpn.portal_serve --actions RUN/actions.sock --fd N

The daemon (vpn.daemon.PortalWorker) binds the box's VPN address, starts this without any capability as
`mamori-portal` (appliance.unprivileged, appliance.child_access), restarts it with back-off if it dies and
stops it (SIGTERM) with its worker generation, so the portal always serves the live revision: what the box
is (clinic, time zone, VPN addresses) it asks once at start. It opens no database and reads no config:
every page asks the daemon for the device's state, and a sign-in and a logout are the daemon's
(vpn.portal_actions, over the action socket, which lets this uid ask for those four alone). This process
can change nothing on the box, and read nothing of it but what its pages show.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from pathlib import Path

from waitress.server import create_server

from appliance.errors import MamoriError
from vpn.policy import Decision
from vpn.portal import create_portal_app
from vpn.portal_view import PortalSite, PortalView
from webui.actions import Actions, SocketActions, call_with

log = logging.getLogger(__name__)


class DaemonPortal:
    """The portal's four questions asked of the daemon (vpn.portal_actions); what the box is, once."""

    def __init__(self, actions: Actions) -> None:
        self.actions = actions
        self._site = PortalSite.from_dict(call_with(actions, "vpn.portal.site"))

    def site(self) -> PortalSite:
        return self._site

    def view(self, remote_ip: str) -> PortalView:
        return PortalView.from_dict(call_with(self.actions, "vpn.portal.view", remote=remote_ip[:64]))

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
    parser.add_argument("--actions", type=Path, required=True, help="the daemon's action socket")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket the daemon bound")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        portal = DaemonPortal(SocketActions(args.actions))
    except MamoriError as exc:  # e.g. the VPN is not enabled in the live revision
        log.error("the daemon did not say what to serve: %s", exc.text("en"))
        return 2
    sock = socket.socket(fileno=args.fd)
    host, port = sock.getsockname()[:2]
    app = create_portal_app(portal, port=port)
    server = create_server(app, sockets=[sock], threads=4, ident="mamori-vpn")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("vpn portal on http://%s:%d/", host, port)
    serve_until(server, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
