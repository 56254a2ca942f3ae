"""The portal in its own process asks the daemon everything (vpn.portal_actions): what the box is, the
device's state, a sign-in and a logout, on the paths that admit nothing: the daemon's checks decide (policy,
password, code), the audit entries are the daemon's. The success path (the kernel's sets) is
tests/integration/test_vpn_gate.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from appliance.actions.registry import ActionEnv, handle_request
from appliance.errors import MamoriError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from vpn.credentials import Credentials
from vpn.keys import generate_keypair
from vpn.portal import create_portal_app
from vpn.portal_serve import DaemonPortal
from vpn.sessions import SessionManager
from vpn.store import DeviceStore
from webui.actions import LocalActions, call_with

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
PASSWORD = "correct horse battery"
PORTAL = "http://10.99.0.1:8443"


@pytest.fixture()
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    # The config in force (no revision yet: the file), with hours all day so the clock never decides.
    c.paths.config.write_text(
        EXAMPLE.replace('hours: {start: "07:00", end: "23:00"}', 'hours: {start: "00:00", end: "00:00"}'),
        encoding="utf-8",
    )
    return c


@pytest.fixture()
def people(ctx):
    from appliance.config.load import load_config

    cfg = load_config(ctx.paths.config).model
    store, creds = DeviceStore(ctx.db), Credentials(ctx.db)
    doc = store.add("yamada", "pc", generate_keypair()[1], cfg.vpn.address, cfg.vpn.address6)
    ven = store.add("vendor-a", "pc", generate_keypair()[1], cfg.vpn.address, cfg.vpn.address6)
    return cfg, doc, ven, creds.set("yamada", PASSWORD), creds.set("vendor-a", PASSWORD)


def portal(ctx, cfg, ip):
    """The portal as its own process builds it: every question through the actions (run in this process by
    the same registry the daemon runs)."""
    app = create_portal_app(DaemonPortal(LocalActions(ctx)), port=8443)
    return app.test_client(), {"environ_base": {"REMOTE_ADDR": ip}, "base_url": PORTAL}


def csrf(c, env) -> str:
    page = c.get("/", **env).get_data(as_text=True)
    return page.split('name="csrf" value="')[1].split('"')[0]


def audit(ctx) -> list[tuple[str, str, dict]]:
    with ctx.db.connection() as conn:
        return [
            (r[0], r[1], json.loads(r[2])) for r in conn.execute("SELECT actor, action, detail FROM audit")
        ]


def test_a_wrong_code_is_refused_by_the_daemon_and_audited(ctx, people) -> None:
    cfg, doc = people[0], people[1]
    c, env = portal(ctx, cfg, doc.ip4)
    r = c.post("/login", data={"csrf": csrf(c, env), "password": PASSWORD, "code": "000000"}, **env)
    assert r.status_code == 401 and "確認コードが違います" in r.get_data(as_text=True)
    assert audit(ctx) == [("yamada", "vpn.signin.refused", {"reason": "bad"})]


def test_a_vendor_without_a_window_is_refused_even_with_the_right_code(ctx, people) -> None:
    cfg, ven, secret = people[0], people[2], people[4]
    c, env = portal(ctx, cfg, ven.ip4)
    r = c.post(
        "/login", data={"csrf": csrf(c, env), "password": PASSWORD, "code": pyotp.TOTP(secret).now()}, **env
    )
    assert r.status_code == 403 and "時間枠" in r.get_data(as_text=True)
    assert SessionManager(ctx, lambda: cfg).list() == []


def test_logout_without_a_session_ends_nothing(ctx, people) -> None:
    cfg, doc = people[0], people[1]
    c, env = portal(ctx, cfg, doc.ip4)
    r = c.post("/logout", data={"csrf": csrf(c, env)}, **env)
    assert r.status_code == 200 and "サインインしていません" in r.get_data(as_text=True)


def test_the_daemon_is_unreachable_so_the_portal_says_so(ctx, people, tmp_path, monkeypatch) -> None:
    import webui.actions

    monkeypatch.setattr(webui.actions, "CONNECT_WAIT", 0.0)  # not waiting for a daemon that never comes
    doc = people[1]
    daemon = DaemonPortal(LocalActions(ctx))
    c = create_portal_app(daemon, port=8443).test_client()
    env = {"environ_base": {"REMOTE_ADDR": doc.ip4}, "base_url": PORTAL}
    token = csrf(c, env)
    daemon.actions = webui.actions.SocketActions(tmp_path / "no.sock")  # the daemon goes away
    r = c.get("/", **env)
    assert r.status_code == 503 and "いまこの画面を表示できません" in r.get_data(as_text=True)
    r = c.post("/login", data={"csrf": token, "password": PASSWORD, "code": "000000"}, **env)
    assert r.status_code == 503
    r = c.post("/logout", data={"csrf": token}, **env)
    assert r.status_code == 503 and "ログアウトを完了できません" in r.get_data(as_text=True)
    assert audit(ctx) == []  # nothing was decided without the daemon


def test_the_portal_learns_only_the_device_it_names(ctx, people) -> None:
    """vpn.portal.view answers for one tunnel address: the user's name, nothing of the secrets; an address
    no device has (or no address at all) is simply not registered."""
    cfg, doc = people[0], people[1]
    daemon = DaemonPortal(LocalActions(ctx))
    assert daemon.site().clinic == cfg.clinic.name and cfg.vpn.address in daemon.site().addresses
    answer = call_with(LocalActions(ctx), "vpn.portal.view", remote=doc.ip4)
    assert set(answer) == {"user_label", "expires", "cutting"}
    assert answer["expires"] is None and answer["cutting"] is False
    user = next(u for u in cfg.vpn.users if u.name == "yamada")
    assert answer["user_label"] == (user.display_name or user.name)
    for remote in ("10.99.0.250", "not an address", ""):
        assert daemon.view(remote).user_label == ""


def test_a_portal_without_the_vpn_is_told_so(ctx, people) -> None:
    """A live revision without the VPN: the daemon refuses the portal's questions (it then exits, see
    vpn.portal_serve.main) rather than serving a page for a VPN that is off."""
    ctx.paths.config.write_text(
        ctx.paths.config.read_text(encoding="utf-8").replace(
            "vpn:\n  enabled: true", "vpn:\n  enabled: false"
        ),
        encoding="utf-8",
    )
    with pytest.raises(MamoriError) as exc:
        DaemonPortal(LocalActions(ctx))
    assert "VPN" in exc.value.text("ja")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"remote": "10.99.0.2", "password": "x"}, "missing argument code"),
        ({"remote": "10.99.0.2", "password": "x", "code": "1" * 17}, "too long"),
        ({"remote": "10.99.0.2", "password": "x", "code": "1", "user": "yamada"}, "unknown argument"),
    ],
)
def test_the_sign_in_action_takes_only_what_the_form_sends(ctx, people, args, words) -> None:
    answer = json.loads(
        handle_request(ActionEnv(ctx), json.dumps({"action": "vpn.portal.sign_in", "args": args}).encode())
    )
    assert answer["ok"] is False and words in answer["error"]["en"], answer
    assert audit(ctx) == []
