"""The daemon's end of the action socket: a unix stream socket in the run directory, one request per
connection (a JSON object, then the client shuts its writing side), one answer back.

Who may connect: the file is 0660, owned by root and the group `mamori-db` of the web UI's account, with a
named ACL entry for the portal's (appliance.child_access; 0600 where they do not exist); and every
connection's peer credentials (SO_PEERCRED) must be one of `peers()`, else the connection is closed
unanswered and logged. Each peer has its own list: root every action; the web UI (`mamori-web`) every action
but the portal's; the VPN portal (`mamori-portal`) only the portal's four (`vpn.portal.*`), so a portal taken
over cannot ask for a config change or a backup. An action outside the peer's list is refused as one that
does not exist. A request over `MAX_REQUEST` bytes is refused unread.
Each connection gets a thread; a slow client is cut after `TIMEOUT` seconds. Changes serialise on the one
apply lock inside the handlers (ConfigService), not here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from appliance.accounts import grant_write
from appliance.actions.registry import MAX_REQUEST, ActionEnv, handle_request_fds
from appliance.child_access import lookup_children
from appliance.subsystem import Context, Subsystem

log = logging.getLogger(__name__)
SOCKET_NAME = "actions.sock"
PORTAL_ACTIONS_PREFIX = "vpn.portal."  # the portal's actions (vpn.portal_actions)
TIMEOUT = 600.0  # a rules update or restore can take minutes; a stuck client must not hold a thread forever


def socket_path(ctx: Context) -> Path:
    return ctx.paths.run_dir / SOCKET_NAME


def any_action(name: str) -> bool:
    return True


def web_action(name: str) -> bool:
    return not name.startswith(PORTAL_ACTIONS_PREFIX)


def portal_action(name: str) -> bool:
    return name.startswith(PORTAL_ACTIONS_PREFIX)


def peers() -> dict[int, Callable[[str], bool]]:
    """uid -> which actions that peer may ask for (the module docstring)."""
    out: dict[int, Callable[[str], bool]] = {0: any_action}
    children = lookup_children()
    if children is not None:
        out[children.web.uid] = web_action
        out[children.portal.uid] = portal_action
    return out


@contextlib.contextmanager
def short_path(path: Path) -> Iterator[str]:
    """A name for `path` that fits sun_path (108 bytes): the path itself, or /proc/self/fd/N/<name> through
    an O_PATH descriptor of its directory (pytest's directories are deeper than 108 bytes)."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def read_request(conn: socket.socket) -> bytes | None:
    """The request's bytes up to the client's shutdown, or None when it is over MAX_REQUEST."""
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_REQUEST:
            return None
        chunks.append(chunk)


class ActionServer:
    """The worker (appliance.daemon starts it before the web UI)."""

    name = "actions"

    def __init__(
        self,
        ctx: Context,
        subsystems: Sequence[Subsystem] | None = None,
        allowed: Mapping[int, Callable[[str], bool]] | None = None,
    ) -> None:
        """`allowed`: the peer uids let in, each with what it may ask for (default: `peers()`)."""
        self.ctx = ctx
        self.subsystems = subsystems
        self.allowed = allowed
        self.path = socket_path(ctx)
        self.ready = threading.Event()

    def bind(self) -> socket.socket:
        from appliance.actions import spool

        self.ctx.paths.ensure()
        children = lookup_children()
        web = (children.web.uid, children.web.gid) if children else None
        spool.provision(self.ctx.paths.state_dir, web)  # the web UI's uploads, before it starts
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # No umask dance (the umask is the whole process's: another thread's new directory would lose its
        # x bits): until listen() below, nobody can connect, whatever the file's mode; it is set first.
        with short_path(self.path) as name:
            sock.bind(name)
        if children is not None:
            os.chown(self.path, 0, children.db_gid)
            os.chmod(self.path, 0o660)
            grant_write(self.path, children.portal)  # the portal is not in mamori-db (appliance.child_access)
        else:
            os.chmod(self.path, 0o600)
        sock.listen(16)
        sock.settimeout(0.5)
        return sock

    def run(self, stop: threading.Event) -> None:
        sock = self.bind()
        self.ready.set()
        allowed = self.allowed if self.allowed is not None else peers()
        log.info("action socket at %s", self.path)
        try:
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._serve, args=(conn, allowed), name="action", daemon=True).start()
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _serve(self, conn: socket.socket, allowed: Mapping[int, Callable[[str], bool]]) -> None:
        with conn:
            uid = peer_uid(conn)
            if uid not in allowed:
                log.warning("action socket: refused a connection from uid %d", uid)
                return
            conn.settimeout(TIMEOUT)
            try:
                data = read_request(conn)
                env = ActionEnv(self.ctx, self.subsystems, uid)
                request = data if data is not None else b"x" * (MAX_REQUEST + 1)
                answer, fds = handle_request_fds(env, request, allowed[uid])
                try:
                    send_answer(conn, answer, fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            except OSError as exc:
                log.warning("action socket: %s", exc)


def send_answer(conn: socket.socket, answer: bytes, fds: list[int]) -> None:
    """The answer's bytes; an open file the handler handed back rides on the first of them (SCM_RIGHTS), so
    the client holds the daemon's descriptor (a file it may not open itself) and reads it at its own pace."""
    if fds:
        sent = socket.send_fds(conn, [answer], fds)
        answer = answer[sent:]
    conn.sendall(answer)
