"""The daemon's allow-list of actions (appliance.actions): what the web UI may ask for, and nothing else.

Each refusal is checked to change nothing (no revision, no audit entry of an apply). The socket test runs the
real server on a real unix socket in a directory deeper than sun_path allows, as pytest's are."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
import yaml

from appliance.actions import registry
from appliance.actions.registry import ActionEnv, ActionError, handle_request, parse_args
from appliance.actions.server import ActionServer, any_action, portal_action, short_path
from appliance.audit import AuditLog
from appliance.config.authority import ConfigRefused
from appliance.revisions import RevisionStore
from appliance.subsystem import Context
from tests.webui_fixtures import EXAMPLE, PASSWORD
from webui.accounts import AccountStore
from webui.actions import SocketActions

# Bounds for the server thread to come up and to stop: long, as CI runs these tests at nice 19 beside the
# integration tests; they end as soon as it is there.
STOP_S = 60

TEXT = EXAMPLE.read_text(encoding="utf-8")


def ask(ctx: Context, request: object) -> dict:
    raw = request if isinstance(request, bytes) else json.dumps(request).encode()
    return json.loads(handle_request(ActionEnv(ctx, subsystems=[]), raw))


def refused(answer: dict, words: str) -> None:
    assert answer["ok"] is False, answer
    assert answer["error"]["code"] == "action.refused", answer
    assert words in answer["error"]["en"], answer


def make_account(ctx: Context, name: str, role: str) -> None:
    secret = pyotp.random_base32() if role == "admin" else ""
    AccountStore(ctx.db).create(name, PASSWORD, role, totp_secret=secret)


@pytest.fixture
def admin(ctx: Context) -> str:
    make_account(ctx, "boss", "admin")
    return "boss"


def apply_args(actor: str, **extra: object) -> dict:
    return {"text": TEXT, "actor": actor, "source": "web", **extra}


def nothing_applied(ctx: Context) -> None:
    assert RevisionStore(ctx.db).live() is None
    assert not [e for e in AuditLog(ctx.db).search(limit=50) if e.action.startswith("config.apply")]


def test_a_listed_action_applies_for_the_named_account(ctx: Context, admin: str) -> None:
    answer = ask(
        ctx, {"action": "config.apply", "args": apply_args(admin, comment="hello", remote="192.0.2.9")}
    )
    assert answer["ok"] is True, answer
    rev = RevisionStore(ctx.db).live()
    assert rev is not None and rev.id == answer["result"]["revision"] and rev.author == admin
    entry = next(e for e in AuditLog(ctx.db).search(limit=10) if e.action == "config.apply")
    assert (entry.actor, entry.source, entry.remote) == (admin, "web", "192.0.2.9")


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        ({"action": "shell.run", "args": {"argv": ["nft", "flush", "ruleset"]}}, "action not allowed: shell.run"),
        ({"action": ["config.apply"], "args": {}}, "action not allowed"),
        ({"action": "config.apply", "args": {"text": TEXT, "actor": "boss", "source": "web", "as_root": True}},
         "unknown argument(s): as_root"),
        ({"action": "config.apply", "args": {"text": TEXT, "source": "web"}}, "missing argument actor"),
        ({"action": "config.apply", "args": {"text": TEXT, "actor": 1, "source": "web"}}, "actor must be of type str"),
        ({"action": "config.apply", "args": apply_args("boss", confirm_seconds=True)}, "confirm_seconds must be of type int"),
        ({"action": "config.apply", "args": apply_args("boss", confirm_seconds="60")}, "confirm_seconds must be of type int"),
        ({"action": "config.apply", "args": apply_args("boss\x00root")}, "has a NUL"),
        ({"action": "config.apply", "args": apply_args("b" * 70000)}, "too long"),
        ({"action": "config.apply", "args": apply_args("boss", source="cli")}, "unknown source"),
        ({"action": "config.apply", "args": apply_args("nobody")}, "account 'nobody' cannot act"),
        ({"action": "config.apply", "args": apply_args("boss", confirm_seconds=10**9)}, "out of range"),
        ({"action": "config.apply", "args": [TEXT]}, "arguments must be a JSON object"),
        ({"action": "config.apply", "args": {}, "sudo": True}, "a request is"),
        (b"config.apply " + TEXT.encode(), "not JSON"),
        (b"{" + b" " * registry.MAX_REQUEST + b"}", "too large"),
    ],
)  # fmt: skip
def test_everything_off_the_list_is_refused_and_nothing_runs(
    ctx: Context, admin: str, request_: object, words: str
) -> None:
    refused(ask(ctx, request_), words)
    nothing_applied(ctx)


def test_the_account_s_own_permissions_bound_the_change(ctx: Context, admin: str) -> None:
    """A viewer cannot apply a config through the action, whatever the web UI process claims: the daemon takes
    the permissions from the account, and the refusal comes back as the web UI's own type."""
    ask(ctx, {"action": "config.apply", "args": apply_args(admin)})
    make_account(ctx, "staff", "viewer")
    data = yaml.safe_load(TEXT)
    data["clinic"]["name"] += "（改）"
    changed = yaml.safe_dump(data, allow_unicode=True)
    answer = ask(ctx, {"action": "config.apply", "args": apply_args("staff") | {"text": changed}})
    assert answer["ok"] is False and answer["error"]["kind"] == "config_refused", answer
    err = registry.error_from_wire(answer["error"])
    assert isinstance(err, ConfigRefused) and err.missing
    assert RevisionStore(ctx.db).live().author == admin


@dataclass(frozen=True)
class _Args:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=list)
    limit: int | None = None


def test_argument_records_are_parsed_strictly() -> None:
    assert parse_args(_Args, {"name": "a", "tags": ["x", "y"], "limit": None}) == _Args(
        "a", 0, ("x", "y"), None
    )
    for bad in (
        {"name": "a", "tags": "x"},
        {"name": "a", "tags": [1]},
        {"name": None},
        {"name": "a", "count": 1.5},
    ):
        with pytest.raises(ActionError):
            parse_args(_Args, bad)


def _serve(
    ctx: Context, allowed: Mapping[int, Callable[[str], bool]] | None
) -> tuple[ActionServer, threading.Event, threading.Thread]:
    server = ActionServer(ctx, subsystems=[], allowed=allowed)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    assert server.ready.wait(STOP_S), f"the action socket was not listening within {STOP_S} s"
    return server, stop, thread


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    """Stop the server and wait until it has closed and removed its socket (it looks at `stop` every 0.5 s)."""
    stop.set()
    thread.join(STOP_S)
    assert not thread.is_alive(), f"the action server did not stop within {STOP_S} s"


@pytest.fixture
def deep_ctx(tmp_path: Path) -> Context:
    from appliance.paths import Paths
    from appliance.storage import Database

    paths = Paths(tmp_path / "config.yaml", tmp_path / ("d" * 90) / "state")
    paths.ensure()
    c = Context(paths, Database(paths.db))
    c.db.migrate()
    return c


def test_the_socket_answers_the_allowed_peer(deep_ctx: Context) -> None:
    make_account(deep_ctx, "boss", "admin")
    server, stop, thread = _serve(deep_ctx, None)
    try:
        assert len(str(server.path)) > 108  # the /proc/self/fd path is what makes this work
        assert server.path.stat().st_mode & 0o777 in (0o600, 0o660)
        client = SocketActions(server.path)
        answer = json.loads(
            client.send(json.dumps({"action": "config.apply", "args": apply_args("boss")}).encode())
        )
        assert answer["ok"] is True, answer
        assert json.loads(client.send(b'{"action": "nope"}'))["error"]["code"] == "action.refused"
    finally:
        _stop(stop, thread)
    assert not server.path.exists()


def test_the_socket_closes_on_a_peer_it_does_not_know(deep_ctx: Context) -> None:
    """SO_PEERCRED: a process of any other account gets no answer and nothing runs."""
    make_account(deep_ctx, "boss", "admin")
    server, stop, thread = _serve(deep_ctx, {987654: any_action})  # not this test's uid
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, short_path(server.path) as name:
            sock.connect(name)
            sock.settimeout(10)
            try:
                sock.sendall(json.dumps({"action": "config.apply", "args": apply_args("boss")}).encode())
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(100) == b""
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed before the request was out: refused all the same
    finally:
        _stop(stop, thread)
    nothing_applied(deep_ctx)


def test_the_allow_list_is_what_the_areas_declare() -> None:
    """Every action comes from an area's `actions` module (appliance.areas) and is named in its ACTION_NAMES:
    reading the areas' declarations is reading the whole list."""
    from appliance.area import load
    from appliance.areas import hooks

    registry._load_actions()
    declared = [name for ref in hooks("actions") for name in load(ref).ACTION_NAMES]
    assert sorted(declared) == sorted(registry.ACTIONS)
    assert {"config.apply", "config.confirm", "ids.block", "vpn.provision", "mgmt.cut"} <= set(declared)
    for ref in hooks("actions"):
        for name in load(ref).ACTION_NAMES:
            assert registry.ACTIONS[name].handler.__module__ == ref


def test_area_actions_check_the_account_and_take_no_path(ctx: Context, admin: str, tmp_path: Path) -> None:
    """The daemon does not trust the page: the account's own permissions, an IP that parses, an upload named
    by its spool name only (a path, a missing file or a link to elsewhere is refused)."""
    from appliance.actions.spool import spool_dir

    make_account(ctx, "staff", "viewer")
    refused(ask(ctx, {"action": "ids.block", "args": {"ip": "192.0.2.7", "actor": "staff"}}), "lacks")
    refused(
        ask(ctx, {"action": "ids.block", "args": {"ip": "192.0.2.7; nft flush", "actor": admin}}), "not an IP"
    )
    refused(
        ask(ctx, {"action": "vpn.provision", "args": {"user": "yamada", "device": "x", "actor": "staff"}}),
        "lacks",
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("root only")
    link = f"rules-{'l' * 22}.tar.gz"
    (spool_dir(ctx) / link).symlink_to(secret)
    for name, words in (
        ("../../secret.txt", "not the name of a spooled upload"),
        (f"rules-{'n' * 22}.tar.gz", "not there"),
        (link, "cannot be opened"),
    ):
        refused(ask(ctx, {"action": "ids.rules_install", "args": {"actor": admin, "upload": name}}), words)
    refused(
        ask(ctx, {"action": "backup.test", "args": {"actor": admin, "archive": "../state.db"}}),
        "no such archive",
    )
    assert not [
        e for e in AuditLog(ctx.db).search(limit=50) if e.action.startswith(("ids.", "vpn.", "backup."))
    ]


def test_a_peer_with_the_portals_list_may_ask_only_for_the_portals_actions(deep_ctx: Context) -> None:
    """The portal's uid (appliance.actions.server.peers): a config change is refused as if it did not exist,
    and nothing is applied; its own action is dispatched (and answers that this box has no VPN)."""
    make_account(deep_ctx, "boss", "admin")
    server, stop, thread = _serve(deep_ctx, {os.getuid(): portal_action})
    try:
        client = SocketActions(server.path)
        refused = json.loads(
            client.send(json.dumps({"action": "config.apply", "args": apply_args("boss")}).encode())
        )
        assert refused["ok"] is False and refused["error"]["code"] == "action.refused", refused
        assert "config.apply" in refused["error"]["en"]
        own = json.loads(
            client.send(json.dumps({"action": "vpn.portal.logout", "args": {"remote": "x"}}).encode())
        )
        assert own["error"]["en"] == "the VPN is not enabled", own  # it ran: this box has no VPN
    finally:
        _stop(stop, thread)
    assert RevisionStore(deep_ctx.db).live() is None
