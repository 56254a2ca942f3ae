"""The web UI's way to change anything: a named action of the daemon's allow-list (appliance.actions).

Production (the daemon's web UI, `webui.serve --actions SOCKET`) sends each request over the daemon's action
socket; the web UI process itself may not change the system. Tests and a stand-alone `webui.serve` without
`--actions` run the same request through the same registry in this process (`LocalActions`): the same JSON
in, the same checks, the same JSON out, so a page cannot pass in a test what the daemon would refuse.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from flask import current_app

from appliance.actions.registry import ActionEnv, error_from_wire, handle_request_fds
from appliance.actions.server import short_path
from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.revisions import Revision, RevisionStore
from appliance.subsystem import Context, Subsystem

CONNECT_WAIT = 10.0  # the daemon starts its action socket just before the web UI; a restart may lag behind
ANSWER_TIMEOUT = 900.0
MAX_FDS = 1  # an answer carries at most one open file (appliance.actions.registry.FD_KEY)


class Actions(Protocol):
    def send(self, request: bytes) -> bytes: ...

    def send_fds(self, request: bytes) -> tuple[bytes, list[int]]: ...


class LocalActions:
    """In-process: the daemon's registry and checks, run here (tests; a stand-alone server run as root)."""

    def __init__(self, ctx: Context, subsystems: Sequence[Subsystem] | None = None,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self.env = ActionEnv(ctx, subsystems, clock=clock or wall)

    def send(self, request: bytes) -> bytes:
        answer, fds = self.send_fds(request)
        for fd in fds:
            os.close(fd)
        return answer

    def send_fds(self, request: bytes) -> tuple[bytes, list[int]]:
        return handle_request_fds(self.env, request)


class SocketActions:
    """Over the daemon's unix socket: one connection per request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + CONNECT_WAIT
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                with short_path(self.path) as name:
                    sock.connect(name)
                return sock
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise MamoriError("本体（Mamori の常駐プログラム）に接続できません。しばらくしてからもう一度お試しください。",
                                      f"cannot reach the daemon's action socket: {exc}", code="action.unreachable") from None  # fmt: skip
                time.sleep(0.2)

    def send(self, request: bytes) -> bytes:
        answer, fds = self.send_fds(request)
        for fd in fds:
            os.close(fd)
        return answer

    def send_fds(self, request: bytes) -> tuple[bytes, list[int]]:
        """The answer, and the descriptors that came with it (SCM_RIGHTS; at most MAX_FDS, now the caller's)."""
        chunks: list[bytes] = []
        fds: list[int] = []
        with self._connect() as sock:
            sock.settimeout(ANSWER_TIMEOUT)
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while True:
                chunk, got, _flags, _addr = socket.recv_fds(sock, 65536, MAX_FDS, socket.MSG_CMSG_CLOEXEC)
                fds.extend(got)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks), fds


def call(name: str, /, **args: Any) -> dict[str, Any]:
    """Run action `name` with `args`; its result, or the MamoriError it raised (as its own type)."""
    return call_with(current_app.config["MAMORI_ACTIONS"], name, **args)


def call_fd(name: str, /, **args: Any) -> tuple[dict[str, Any], int | None]:
    """`call`, and the open file the daemon handed back with the answer (the caller closes it), if any."""
    return call_fd_with(current_app.config["MAMORI_ACTIONS"], name, **args)


def call_with(actions: Actions, name: str, /, **args: Any) -> dict[str, Any]:
    """`call` through the given `actions`, outside a Flask request (the VPN portal's process)."""
    result, fd = call_fd_with(actions, name, **args)
    if fd is not None:
        os.close(fd)
    return result


def call_fd_with(actions: Actions, name: str, /, **args: Any) -> tuple[dict[str, Any], int | None]:
    """`call_fd` through the given `actions`."""
    raw, fds = actions.send_fds(json.dumps({"action": name, "args": args}, ensure_ascii=False).encode())
    fd = fds[0] if fds else None
    for extra in fds[1:]:
        os.close(extra)
    try:
        return _answer(raw), fd
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise MamoriError(
            "本体から答えがありませんでした。", "no answer from the daemon", code="action.no_answer"
        )
    if not answer.get("ok"):
        raise error_from_wire(answer.get("error") or {})
    return answer.get("result") or {}


def _revision(ctx: Context, result: dict[str, Any]) -> Revision:
    rev = RevisionStore(ctx.db).get(int(result["revision"]))
    assert rev is not None, "the daemon answered a revision that is not in the database"
    return rev


def apply_config(ctx: Context, text: str, actor: str, source: str, comment: str = "",
                 confirm_seconds: int | None = None, remote: str = "") -> Revision:  # fmt: skip
    """ConfigService.apply through the daemon, with the account's own permissions as authority."""
    result = call("config.apply", text=text, actor=actor, source=source, comment=comment,
                  confirm_seconds=confirm_seconds, remote=remote)  # fmt: skip
    return _revision(ctx, result)


def confirm_config(ctx: Context, actor: str, source: str, remote: str = "", revision: int | None = None,
                   only_own: bool = False) -> Revision:  # fmt: skip
    result = call(
        "config.confirm", actor=actor, source=source, remote=remote, revision=revision, only_own=only_own
    )
    return _revision(ctx, result)


def reconcile(actor: str) -> None:
    call("config.reconcile", actor=actor)
