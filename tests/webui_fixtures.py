"""Shared fixtures for the web UI tests: an app on a fresh state directory, a fake clock, sign-in helpers.

The app is real (real SQLite, real Argon2id, real TOTP, real ConfigService). Unit tests pass
`subsystems=[]` to ConfigService: a box with no engines, so that applying a config in a unit test touches
no kernel state; the integration tests run the full set inside a network namespace.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from webui import create_app
from webui.accounts import AccountStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "clinic.yaml"
PASSWORD = "Kanja-no-Mamori-2026"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Box:
    app: Flask
    ctx: Context
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)

    def store(self) -> AccountStore:
        return AccountStore(self.ctx.db, clock=self.clock)

    def add(self, name: str, role: str, grants: tuple[str, ...] = (), expires_in: float = 8 * 3600) -> None:
        secret = pyotp.random_base32() if role in ("admin", "vendor") else ""
        expires = self.clock.now + expires_in if role == "vendor" else None
        self.store().create(name, PASSWORD, role, totp_secret=secret, expires_at=expires, grants=grants)
        self.secrets[name] = secret

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def login(self, client: FlaskClient, name: str, password: str = PASSWORD) -> None:
        token = csrf(client, "/login")
        r = client.post("/login", data={"csrf_token": token, "username": name, "password": password})
        if self.secrets.get(name):
            assert r.status_code == 302 and r.headers["Location"].endswith("/login/totp"), r.status_code
            token = csrf(client, "/login/totp")
            # Each TOTP step is accepted once: move the fake clock to a fresh step for every sign-in.
            self.clock.advance(30)
            code = pyotp.TOTP(self.secrets[name]).at(self.clock.now)
            r = client.post("/login/totp", data={"csrf_token": token, "code": code})
        assert r.status_code == 302, r.status_code
        assert "/login" not in r.headers["Location"]


def csrf(client: FlaskClient, path: str) -> str:
    r = client.get(path)
    m = CSRF_RE.search(r.get_data(as_text=True))
    assert m, f"no CSRF token on {path} ({r.status_code})"
    return m.group(1)


def session_token(client: FlaskClient) -> str:
    with client.session_transaction() as sess:
        return sess["csrf"]


def make_box(tmp_path: Path, with_config: bool = True) -> Box:
    state = tmp_path / "state"
    paths = Paths(config=tmp_path / "config.yaml", state_dir=state)
    if with_config:
        shutil.copy(EXAMPLE, paths.config)
    ctx = Context(paths=paths, db=Database(paths.db))
    clock = Clock()
    app = create_app(ctx, testing=True, subsystems=[], clock=clock, confirm_seconds=None)
    return Box(app=app, ctx=ctx, clock=clock)


@pytest.fixture(name="box")
def box_fixture(tmp_path: Path) -> Box:
    """A box with the example clinic config on disk, one admin (admin), one viewer (staff), two vendors."""
    b = make_box(tmp_path)
    b.add("admin", "admin")
    b.add("staff", "viewer")
    b.add("vendor-fw", "vendor", grants=("firewall", "alerts"))
    b.add("vendor-none", "vendor")
    return b


def audit_actions(box: Box, actor: str | None = None) -> list[str]:
    from appliance.audit import AuditLog

    return [e.action for e in AuditLog(box.ctx.db).search(actor=actor, limit=1000)]


# -- integration: the real server in a network namespace of its own --------------------------------------


@dataclass
class Served:
    ns: str
    state: Path
    config: Path
    https_port: int
    http_port: int
    proc: object

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def _ip(*args: str) -> None:
    import subprocess

    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _wait_port(port: int, timeout: float = 30.0) -> None:
    """Until /healthz answers over HTTPS: the port opens before gunicorn's worker has booted."""
    import http.client
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the web UI did not answer on 127.0.0.1:{port}")


def _remove_wireguard(run_dir: Path) -> None:
    """WireGuard interfaces the box made while serving (wireguard-go runs as its own process): removed by
    the VPN area's own code, which stops wireguard-go by the pid it recorded. Runs inside the namespace."""
    from vpn.wg import WgInterface

    for pid_file in run_dir.glob("wireguard-go-*.pid"):
        WgInterface(
            pid_file.name.removeprefix("wireguard-go-").removesuffix(".pid"), run_dir=run_dir
        ).delete()


def serve_in_namespace(tmp: Path, tag: str, https_port: int = 8443, http_port: int = 8080):
    """Context manager: a namespace `wb<pid><tag>` with lo, wan0 and lan0 (veth pairs inside it), the real
    `python -m webui.serve` running there, and THIS thread switched into it (pyroute2 pushns) so that the
    test's own sockets and the browser it starts reach the server on the namespace's loopback. The root
    namespace is never touched; everything is removed and the thread switched back at the end."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys

    from pyroute2.netns import popns, pushns

    @contextlib.contextmanager
    def manager():
        ns = f"wb{os.getpid()}{tag}"
        _ip("netns", "add", ns)
        proc = None
        pushed = False
        try:
            _ip("-n", ns, "link", "set", "lo", "up")
            for a, b in (("wan0", "wan0peer"), ("lan0", "lan0peer")):
                _ip("-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
                _ip("-n", ns, "link", "set", a, "up")
                _ip("-n", ns, "link", "set", b, "up")
            state, config = tmp / "state", tmp / "config.yaml"
            pushns(ns)
            pushed = True
            log = open(tmp / "serve.log", "wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "webui.serve", "--config", str(config), "--state-dir", str(state),
                 "--bind", f"127.0.0.1:{https_port}", "--http-bind", f"127.0.0.1:{http_port}", "--threads", "4",
                 "--confirm-seconds", "0"],
                stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1],
                start_new_session=True,
            )  # fmt: skip
            _wait_port(https_port)
            yield Served(ns, state, config, https_port, http_port, proc)
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)  # gunicorn master and its worker: our own process group
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            if pushed:
                _remove_wireguard(tmp / "state" / "run")
                popns()
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)

    return manager()
