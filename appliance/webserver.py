"""The web UI as a child process of the daemon: started, restarted with back-off if it dies, moved when
the management addresses change, restarted on a reload (SIGHUP: after a restore it must read the restored
certificate and cookie key), stopped with the daemon.

It listens only on the box's addresses in the zones of `web.zones` (never wan or guest; the firewall
enforces the same); on a new box without any config, on every address for the setup wizard.
On a real box this is the only way the web UI runs (no separate systemd unit), so there is one owner
of port 443 in the lab, in tests and on the box. A separate process, not a thread: a crash or a slow request in the UI must never stall
the daemon's firewall and IDS work.

The daemon binds the listening sockets (every HTTPS address, and port 80 for the redirect) and passes them in;
the child runs without any capability, as the `mamori-web` account (appliance.unprivileged); before each start
the daemon opens its files to it (appliance.child_access) and runs the areas' `web_start` hooks (the web UI's
certificate and cookie key, which it cannot make itself). The sockets stay with the daemon while the
addresses stay the same: a restarted web UI accepts on them again, and connections made in between wait in
the backlog instead of being refused.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import subprocess
import sys
import threading
import time

from appliance import child_access, unprivileged
from appliance.accounts import Account
from appliance.actions.server import socket_path
from appliance.area import load
from appliance.areas import hooks
from appliance.config.model import MamoriConfig
from appliance.ports import WEB_REDIRECT_PORT  # plain HTTP, redirect only; the firewall opens it too
from appliance.revisions import live_config
from appliance.subsystem import Context

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0
SETUP_PORT = 443
# Every area's before_web_start(ctx, account) (appliance.area): run by the daemon before each start of the web UI.
WEB_START_MODULES: tuple[str, ...] = tuple(hooks("web_start"))


def web_addresses(cfg: MamoriConfig) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every static address of an interface in a management zone: where people reach the web UI (the
    listening addresses here, and the names of its certificate in `webui.tls_renew.wanted_names`)."""
    out = []
    for iface in cfg.interfaces:
        if iface.zone not in cfg.web.zones or iface.zone in ("wan", "guest"):
            continue
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp":
                out.append(ipaddress.ip_interface(addr).ip)
    if cfg.mgmt.enabled and cfg.mgmt.address:  # the vendor hub's tunnel (mgmt/; firewall in_mgmt-link)
        out.append(ipaddress.ip_address(cfg.mgmt.address))
    return out


def web_binds(cfg: MamoriConfig) -> list[str]:
    """host:port for every static address of an interface in a management zone."""
    return [
        f"[{ip}]:{cfg.web.port}" if ip.version == 6 else f"{ip}:{cfg.web.port}" for ip in web_addresses(cfg)
    ]


def _local_address(address: str) -> bool:
    """Whether this address is one of the machine's own now (a bind to it would succeed)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


class WebServerWorker:
    name = "webui"

    def __init__(self, ctx: Context, poll: float = 2.0) -> None:
        self.ctx = ctx
        self.poll = poll
        self.child: subprocess.Popen | None = None
        self.binds: list[str] = []
        self.sockets: list[socket.socket] = []  # bound by the daemon, passed to the child
        self.bound: list[str] = []  # what `sockets` are bound to
        self._restart = threading.Event()

    def restart(self) -> None:
        """Stop the running web UI and start a new one at once (a reload: after a restore, the new process
        reads the restored certificate and cookie key). Called from another thread; returns at once."""
        self._restart.set()

    def _wanted_binds(self) -> list[str]:
        """The management addresses of the live config; before the first config (a new box), every
        address, so the setup wizard can be reached — the fail-closed boot policy admits only private
        source addresses to it."""
        cfg = live_config(self.ctx.db)
        if cfg is None:
            return [f"0.0.0.0:{SETUP_PORT}"]
        binds = web_binds(cfg)
        if cfg.mgmt.enabled and cfg.mgmt.address and not _local_address(cfg.mgmt.address):
            # The management link is down (cut, or its hub unreachable at boot): the clinic's own web UI
            # must not fail to start for it. Once the address exists the binds change and the UI restarts.
            ip = ipaddress.ip_address(cfg.mgmt.address)
            binds = [b for b in binds if b.rsplit(":", 1)[0].strip("[]") != str(ip)]
        return binds

    def _listen(self, binds: list[str]) -> list[socket.socket]:
        """The sockets for `binds` and, last, the redirect's: those already open, else bound now (all or
        none: an address that fails closes the ones just bound)."""
        # Plain HTTP on the first address only redirects to HTTPS (people type the address without https://).
        wanted = [*binds, f"{binds[0].rsplit(':', 1)[0]}:{WEB_REDIRECT_PORT}"]
        if wanted != self.bound:
            self._close_sockets()
            opened: list[socket.socket] = []
            try:
                for bind in wanted:
                    opened.append(unprivileged.listen(bind))
            except OSError:
                for sock in opened:
                    sock.close()
                raise
            self.sockets, self.bound = opened, wanted
        return self.sockets

    def _close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets, self.bound = [], []

    def _start(self, binds: list[str]) -> None:
        *https, http = self._listen(binds)
        # -I: never import from the working directory (a folder named webui there would run as root).
        argv = [sys.executable, "-I", "-m", "webui.serve", "--config", str(self.ctx.paths.config),
                "--state-dir", str(self.ctx.paths.state_dir), "--actions", str(socket_path(self.ctx))]  # fmt: skip
        for sock in https:
            argv += ["--fd", str(sock.fileno())]
        argv += ["--http-fd", str(http.fileno())]
        account, groups = child_access.prepare(self.ctx.paths, "web", self._before_start)
        self.child = unprivileged.start(
            argv, [s.fileno() for s in self.sockets], self.ctx.paths.run_dir / "webui.log", account, groups
        )
        self.binds = binds
        log.info("web UI started (pid %d) on %s", self.child.pid, ", ".join(binds))

    def _before_start(self, account: Account | None) -> None:
        for module in WEB_START_MODULES:
            load(module).before_web_start(self.ctx, account)

    def _stop_child(self) -> None:
        unprivileged.stop(self.child)
        self.child = None

    def run(self, stop: threading.Event) -> None:
        backoff, started_at = 1.0, 0.0
        try:
            while not stop.is_set():
                wanted = self._wanted_binds()
                restart = self._restart.is_set()
                self._restart.clear()
                if self.child is not None and self.child.poll() is not None:
                    log.error("web UI exited with %s; restarting in %.0f s", self.child.returncode, backoff)
                    self.child = None
                    if time.monotonic() - started_at > 60:  # it had been running well: start over
                        backoff = 1.0
                    if stop.wait(backoff):
                        break
                    backoff = min(backoff * 2, MAX_BACKOFF)
                elif self.child is not None and (wanted != self.binds or restart):
                    self._stop_child()  # the old one lets its requests finish, then the new one listens
                if self.child is None and wanted:
                    try:
                        self._start(wanted)
                    except OSError as exc:  # an address not there (yet), a port taken: as if it had died
                        log.error("web UI cannot listen on %s (%s); trying again in %.0f s", ", ".join(wanted),
                                  exc, backoff)  # fmt: skip
                        if stop.wait(backoff):
                            break
                        backoff = min(backoff * 2, MAX_BACKOFF)
                        continue
                    started_at = time.monotonic()
                self._wait(stop)
        finally:
            self._stop_child()
            self._close_sockets()

    def _wait(self, stop: threading.Event) -> None:
        """`poll` seconds, or less when asked to stop or to restart."""
        deadline = time.monotonic() + self.poll
        while not stop.is_set() and not self._restart.is_set() and time.monotonic() < deadline:
            stop.wait(min(0.1, self.poll))
