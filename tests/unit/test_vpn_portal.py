"""The portal and session manager on the paths that admit nothing (no kernel touched), the tunnel
monitor's change detection, and the window report."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from appliance.config.load import parse_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from vpn.credentials import Credentials
from vpn.keys import generate_keypair
from vpn.monitor import HANDSHAKE_GAP_S, LARGE_TRANSFER, _Track, changes
from vpn.portal import create_portal_app
from vpn.portal_view import LocalPortal
from vpn.sessions import SessionManager
from vpn.store import Device, DeviceStore
from vpn.wg import DumpState, PeerState

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
CFG = parse_config(
    EXAMPLE.replace('hours: {start: "07:00", end: "23:00"}', 'hours: {start: "00:00", end: "00:00"}')
).model
PASSWORD = "correct horse battery"


@pytest.fixture()
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    return c


@pytest.fixture()
def people(ctx):
    store, creds = DeviceStore(ctx.db), Credentials(ctx.db)
    doc = store.add("yamada", "pc", generate_keypair()[1], CFG.vpn.address, CFG.vpn.address6)
    ven = store.add("vendor-a", "pc", generate_keypair()[1], CFG.vpn.address, CFG.vpn.address6)
    return doc, ven, creds.set("yamada", PASSWORD), creds.set("vendor-a", PASSWORD)


PORTAL = "http://10.99.0.1:8443"  # the example's vpn.address and the portal's port: the Host a tunnel uses


def client(ctx, ip):
    """A test client and the request arguments of a device at tunnel address `ip` opening the portal."""
    app = create_portal_app(LocalPortal(SessionManager(ctx, lambda: CFG)), port=8443)
    return app.test_client(), {"environ_base": {"REMOTE_ADDR": ip}, "base_url": PORTAL}


def csrf(c, env) -> str:
    page = c.get("/", **env).get_data(as_text=True)
    return page.split('name="csrf" value="')[1].split('"')[0]


def test_unknown_device_sees_no_form(ctx, people):
    c, env = client(ctx, "10.99.0.200")
    page = c.get("/", **env).get_data(as_text=True)
    assert "登録されていません" in page and 'name="password"' not in page


def test_form_is_japanese_and_phone_friendly(ctx, people):
    c, env = client(ctx, people[0].ip4)
    page = c.get("/", **env).get_data(as_text=True)
    assert 'lang="ja"' in page and 'name="viewport"' in page and "山田 院長" in page
    assert 'inputmode="numeric"' in page and 'autocomplete="one-time-code"' in page


def test_missing_csrf_is_refused(ctx, people):
    c, env = client(ctx, people[0].ip4)
    c.get("/", **env)
    r = c.post("/login", data={"password": PASSWORD, "code": "123456"}, **env)
    assert r.status_code == 400


def test_wrong_code_is_401_and_audited(ctx, people):
    c, env = client(ctx, people[0].ip4)
    r = c.post("/login", data={"csrf": csrf(c, env), "password": PASSWORD, "code": "000000"}, **env)
    assert r.status_code == 401 and "確認コードが違います" in r.get_data(as_text=True)
    with ctx.db.connection() as conn:
        row = conn.execute("SELECT actor, action, detail FROM audit").fetchone()
    assert (row["actor"], row["action"], json.loads(row["detail"])) == (
        "yamada",
        "vpn.signin.refused",
        {"reason": "bad"},
    )


def test_vendor_without_window_is_403_even_with_the_right_code(ctx, people):
    c, env = client(ctx, people[1].ip4)
    code = pyotp.TOTP(people[3]).now()
    r = c.post("/login", data={"csrf": csrf(c, env), "password": PASSWORD, "code": code}, **env)
    assert r.status_code == 403 and "時間枠" in r.get_data(as_text=True)
    assert SessionManager(ctx, lambda: CFG).list() == []


def test_hostile_form_input_is_capped(ctx, people):
    c, env = client(ctx, people[0].ip4)
    r = c.post("/login", data={"csrf": csrf(c, env), "password": "x" * 5000, "code": "<script>"}, **env)
    assert r.status_code in (401, 413) and "<script>" not in r.get_data(as_text=True)


def audit_rows(ctx) -> list[str]:
    with ctx.db.connection() as conn:
        return [r[0] for r in conn.execute("SELECT action FROM audit")]


@pytest.mark.parametrize(
    ("base", "status"),
    [
        ("http://10.99.0.1:8443", 200),
        ("http://10.99.0.1", 200),
        ("http://[fd4d:616d:6f72::1]:8443", 200),
        ("http://evil.example:8443", 421),  # a name rebound to the portal's address
        ("http://evil.example", 421),
        ("http://10.99.0.1:9999", 421),
        ("http://localhost:8443", 421),
        ("http://10.99.0.1.evil.example:8443", 421),
    ],
)
def test_only_the_portals_own_address_is_served(ctx, people, base: str, status: int) -> None:
    c, env = client(ctx, people[0].ip4)
    r = c.get("/", environ_base=env["environ_base"], base_url=base)
    assert r.status_code == status
    assert ('name="password"' in r.get_data(as_text=True)) == (status == 200)


def test_a_rebound_page_cannot_sign_in_or_out_for_the_doctor(ctx, people) -> None:
    """DNS rebinding: the attacker's page reads the form (same origin for the browser) and posts it."""
    c, env = client(ctx, people[0].ip4)
    token = csrf(c, env)
    evil = {"environ_base": env["environ_base"], "base_url": "http://evil.example:8443"}
    for _ in range(3):
        r = c.post("/login", data={"csrf": token, "password": "guess", "code": "000000"}, **evil)
        assert r.status_code == 421
    assert c.post("/logout", data={"csrf": token}, **evil).status_code == 421
    assert audit_rows(ctx) == []  # no wrong sign-in counted toward the doctor's lock


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "http://evil.example"}, True),
        ({"Origin": "http://evil.example:8443"}, True),
        ({"Origin": "null"}, True),
        ({"Origin": "https://10.99.0.1:8443"}, True),
        ({"Referer": "http://evil.example/page.html"}, True),
        ({"Origin": "http://10.99.0.1:8443"}, False),
        ({"Referer": "http://10.99.0.1:8443/"}, False),
        ({"Origin": "http://10.99.0.1:8443", "Referer": "http://evil.example/"}, False),  # Origin decides
        ({}, False),  # neither sent (an old browser, a privacy setting): the CSRF token still guards
    ],
)
def test_a_post_from_another_sites_page_is_refused(ctx, people, headers: dict, refused: bool) -> None:
    c, env = client(ctx, people[0].ip4)
    r = c.post(
        "/login", data={"csrf": csrf(c, env), "password": PASSWORD, "code": "000000"}, headers=headers, **env
    )
    assert r.status_code == (403 if refused else 401)
    assert audit_rows(ctx) == ([] if refused else ["vpn.signin.refused"])


def dev(i: int, user: str) -> Device:
    return Device(i, user, f"d{i}", f"K{i}", f"10.99.0.{i}", None, True, 0.0, None)


def peer(key: str, hs: int, ep: str | None, rx: int = 0, tx: int = 0) -> PeerState:
    return PeerState(key, ep, (), hs, rx, tx, None)


def test_monitor_connect_endpoint_bytes_disconnect():
    devices = {"K1": dev(1, "yamada"), "K2": dev(2, "yamada")}
    tracks: dict[str, _Track] = {}
    multi: dict[str, str] = {}
    t0 = 1_800_000_000.0

    def kinds(peers, now):
        state = DumpState("S", 51820, {p.public_key: p for p in peers})
        return [(e.kind, e.device_id) for e in changes(tracks, state, devices, now, multi)]

    assert kinds([peer("K1", 0, None)], t0) == []
    assert kinds([peer("K1", int(t0), "198.51.100.20:5000", 100, 50)], t0 + 1) == [("connect", 1)]
    assert kinds([peer("K1", int(t0), "198.51.100.21:6000", 100, 50)], t0 + 2) == [("endpoint", 1)]
    both = kinds(
        [peer("K1", int(t0), "198.51.100.21:6000", 200, 50), peer("K2", int(t0) + 5, "203.0.113.99:1")],
        t0 + 70,
    )
    assert ("connect", 2) in both and ("bytes", 1) in both and ("two_endpoints", 1) in both
    again = [peer("K1", int(t0), "198.51.100.21:6000", 200, 50), peer("K2", int(t0) + 5, "203.0.113.99:1")]
    assert kinds(again, t0 + 71) == []  # still two places: not logged again on every poll
    gone = kinds([peer("K1", int(t0), "198.51.100.21:6000", 200, 50)], t0 + HANDSHAKE_GAP_S + 1)
    assert gone == [("disconnect", 1)]


def test_monitor_large_transfer():
    devices = {"K1": dev(1, "vendor-a")}
    tracks: dict[str, _Track] = {}
    t0 = 1_800_000_000.0
    changes(tracks, DumpState("S", 1, {"K1": peer("K1", int(t0), "1.2.3.4:5")}), devices, t0)
    out = changes(
        tracks,
        DumpState("S", 1, {"K1": peer("K1", int(t0) + 60, "1.2.3.4:5", LARGE_TRANSFER + 1)}),
        devices,
        t0 + 61,
    )
    assert [e.kind for e in out] == ["bytes", "large_transfer"]


def test_monitor_records_log_and_audits_only_events(ctx):
    from vpn.monitor import LogEntry, peer_log, record

    t = 1_800_000_000.0
    record(ctx, [LogEntry(t, "yamada", 1, "bytes", "1.2.3.4:5", 10, 20),
                 LogEntry(t + 1, "yamada", 1, "two_endpoints", detail="1.2.3.4,5.6.7.8")])  # fmt: skip
    assert [e.kind for e in peer_log(ctx, "yamada")] == ["two_endpoints", "bytes"]
    assert peer_log(ctx, "sato") == []
    with ctx.db.connection() as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit")]
    assert actions == ["vpn.event.two_endpoints"]
