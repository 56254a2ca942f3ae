"""Accounts: password policy (MHLW checklist), Argon2id, history, rate limit, TOTP, sessions."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from appliance.errors import MamoriError
from tests.webui_fixtures import PASSWORD, Box, audit_actions, box_fixture, csrf, make_box  # noqa: F401
from webui.accounts import AccountStore
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
