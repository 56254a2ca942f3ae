"""Accounts: password policy (MHLW checklist), Argon2id, history, rate limit, TOTP, sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest
from flask.testing import FlaskClient

from appliance.errors import MamoriError
from tests.webui_fixtures import (  # noqa: F401
    PASSWORD,
    Box,
    audit_actions,
    box_fixture,
    csrf,
    make_box,
    session_token,
)
from webui.accounts import ENROL_SECONDS, SESSION_MAX_SECONDS, AccountStore
from webui.passwords import PasswordPolicyError, check_password

POLICY = [
    # (password, user, mfa, accepted)
    ("Kanja-no-Mamori-2026", "admin", False, True),
    ("abcdefghijkmnpq", "admin", False, True),  # 15 chars, one class: long enough without MFA
    ("Ab3$efgh", "admin", True, True),  # 8 chars, 4 classes, with MFA
    ("Ab3$efgh", "admin", False, False),  # the same without MFA is too short
    ("abcdefgh", "admin", True, False),  # 8 chars but one class
    ("Ab3$efg", "admin", True, False),  # 7 chars
    ("shortpass12", "admin", False, False),
    ("administrator", "administrator", False, False),  # equals the user id
    ("passwordpassword", "admin", False, False),  # on the common list
    ("P@ssw0rd", "admin", True, False),  # common, whatever the classes
    ("aaaaaaaaaaaaaaaa", "admin", False, False),  # repetitive
    ("1234567890123", "admin", False, False),  # a run of digits
]


@pytest.mark.parametrize(("password", "user", "mfa", "accepted"), POLICY)
def test_password_policy(password: str, user: str, mfa: bool, accepted: bool) -> None:
    if accepted:
        check_password(password, user, mfa)
    else:
        with pytest.raises(PasswordPolicyError) as err:
            check_password(password, user, mfa)
        assert err.value.text("ja") and err.value.text("en")


def test_argon2id_and_no_reuse_of_last_five(tmp_path: Path) -> None:
    b = make_box(tmp_path)
    store = b.store()
    store.create("nurse", PASSWORD, "viewer")
    with b.ctx.db.connection() as conn:
        assert conn.execute("SELECT password_hash FROM web_users").fetchone()[0].startswith("$argon2id$")
    used = [PASSWORD] + [f"Kango-Shi-no-Pass-{i:02d}" for i in range(5)]
    for pw in used[1:]:
        store.change_password("nurse", pw)
    with pytest.raises(MamoriError):
        store.change_password("nurse", used[-1])
    with pytest.raises(MamoriError):
        store.change_password("nurse", used[2])
    store.change_password("nurse", used[0])  # six changes ago: allowed again
    assert store.verify_password("nurse", used[0])


def test_admin_and_vendor_need_totp_at_first_sign_in(box: Box) -> None:
    box.store().create("newadmin", PASSWORD, "admin")
    client = box.client()
    token = csrf(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "username": "newadmin", "password": PASSWORD})
    assert r.headers["Location"].endswith("/login/enroll")
    page = client.get("/login/enroll").get_data(as_text=True)
    token = csrf(client, "/login/enroll")
    assert "<svg" in page
    secret = page.split('class="secret">')[1].split("<")[0]
    r = client.post("/login/enroll", data={"csrf_token": token, "code": "000000"})
    assert r.status_code == 401
    box.clock.advance(30)
    r = client.post("/login/enroll", data={"csrf_token": token, "code": pyotp.TOTP(secret).at(box.clock.now)})
    assert r.status_code == 302 and box.store().get("newadmin").totp_enabled
    assert "web.totp_enrolled" in audit_actions(box, "newadmin")


def test_totp_codes_do_not_replay(box: Box) -> None:
    store = box.store()
    box.clock.advance(30)
    code = pyotp.TOTP(box.secrets["admin"]).at(box.clock.now)
    assert store.check_totp("admin", code)
    assert not store.check_totp("admin", code)  # same step again: replay refused


def test_rate_limit_per_address(box: Box) -> None:
    client = box.client()
    token = csrf(client, "/login")
    for i in range(20):
        client.post("/login", data={"csrf_token": token, "username": f"nobody{i}", "password": "x" * 13})
    r = client.post("/login", data={"csrf_token": token, "username": "staff", "password": PASSWORD})
    assert r.status_code == 429
    assert "web.login_rate_limited" in audit_actions(box)


def test_idle_timeout_ends_the_session(box: Box) -> None:
    client = box.client()
    box.login(client, "staff")
    assert client.get("/").status_code == 200
    box.clock.advance(14 * 60)  # clinic.yaml keeps the default 15 minutes
    assert client.get("/").status_code == 200  # activity resets the idle timer
    box.clock.advance(15 * 60 + 1)
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert "しばらく操作がなかった" in client.get("/login").get_data(as_text=True)


def test_vendor_account_expires(box: Box) -> None:
    client = box.client()
    box.login(client, "vendor-fw")
    assert client.get("/firewall/").status_code == 200
    box.clock.advance(8 * 3600 + 1)
    assert client.get("/firewall/").status_code == 302
    token = csrf(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "username": "vendor-fw", "password": PASSWORD})
    assert r.status_code == 401


def test_unused_accounts_are_flagged(box: Box) -> None:
    store = AccountStore(box.ctx.db, clock=box.clock)
    assert not store.get("staff").unused(box.clock.now)
    box.clock.advance(91 * 86400)
    assert store.get("staff").unused(box.clock.now)
    client = box.client()
    box.login(client, "admin")
    page = client.get("/accounts/").get_data(as_text=True)
    assert page.count("未使用") >= 3  # staff and both vendors; admin just signed in


def test_logout_ends_the_server_side_session(box: Box) -> None:
    client = box.client()
    box.login(client, "staff")
    with client.session_transaction() as sess:
        token = sess["csrf"]
        sid = sess["sid"]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert box.store().touch_session(sid, 900) is None
    assert client.get("/").status_code == 302


def _start_enrolment(box: Box) -> tuple[FlaskClient, str]:
    """A new administrator signs in with his password: the enrolment page and the seed it shows."""
    box.store().create("newadmin", PASSWORD, "admin")
    client = box.client()
    token = csrf(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "username": "newadmin", "password": PASSWORD})
    assert r.headers["Location"].endswith("/login/enroll")
    page = client.get("/login/enroll").get_data(as_text=True)
    return client, page.split('class="secret">')[1].split("<")[0]


def test_the_pending_totp_seed_stays_on_the_server(box: Box) -> None:
    client, secret = _start_enrolment(box)
    cookie = client.get_cookie("__Host-mamori").value
    session = box.app.session_interface.get_signing_serializer(box.app).loads(cookie)
    assert secret not in json.dumps(session) and "secret" not in json.dumps(session)
    with box.ctx.db.connection() as conn:
        assert conn.execute("SELECT name FROM web_totp_pending WHERE secret = ?", (secret,)).fetchone()
    token = csrf(client, "/login/enroll")
    code = pyotp.TOTP(secret).at(box.clock.now)
    assert client.post("/login/enroll", data={"csrf_token": token, "code": code}).status_code == 302
    with box.ctx.db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM web_totp_pending").fetchone()[0] == 0


def test_a_pending_seed_expires(box: Box) -> None:
    client, secret = _start_enrolment(box)
    box.clock.advance(ENROL_SECONDS + 1)
    r = client.get("/login/enroll")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    with box.ctx.db.connection() as conn:
        token = conn.execute("SELECT token FROM web_totp_pending WHERE secret = ?", (secret,)).fetchone()[0]
    assert box.store().pending_enrolment(token) is None


def test_the_enrolment_code_cannot_be_used_again_at_the_next_sign_in(box: Box) -> None:
    client, secret = _start_enrolment(box)
    code = pyotp.TOTP(secret).at(box.clock.now)
    token = csrf(client, "/login/enroll")
    assert client.post("/login/enroll", data={"csrf_token": token, "code": code}).status_code == 302
    client.post("/logout", data={"csrf_token": session_token(client)})
    token = csrf(client, "/login")
    client.post("/login", data={"csrf_token": token, "username": "newadmin", "password": PASSWORD})
    token = csrf(client, "/login/totp")
    r = client.post("/login/totp", data={"csrf_token": token, "code": code})  # same 30 s step
    assert r.status_code == 401


def test_a_password_change_ends_the_other_sessions(box: Box) -> None:
    here, elsewhere, other_user = box.client(), box.client(), box.client()
    for client in (here, elsewhere):
        box.login(client, "staff")
    box.login(other_user, "admin")
    new = "Kango-Shi-no-Pass-99"
    r = here.post(
        "/me", data={"csrf_token": session_token(here), "current": PASSWORD, "new": new, "confirm": new}
    )
    assert r.status_code == 302
    assert here.get("/").status_code == 200  # the session that changed it goes on
    r = elsewhere.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert other_user.get("/").status_code == 200
    assert box.store().session_count("staff") == 1


def test_a_session_ends_12_hours_after_sign_in_however_busy(box: Box) -> None:
    client = box.client()
    box.login(client, "staff")
    started = box.clock.now
    while box.clock.now + 10 * 60 <= started + SESSION_MAX_SECONDS:
        box.clock.advance(10 * 60)  # well inside the idle timeout
        assert client.get("/").status_code == 200
    box.clock.now = started + SESSION_MAX_SECONDS + 1
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    box.login(client, "staff")  # signing in again starts a new 12 hours
    assert client.get("/").status_code == 200
