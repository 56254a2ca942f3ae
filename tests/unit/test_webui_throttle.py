"""Failed sign-ins wait per name and address (growing delays), never lock the account for everyone: an
attacker at one PC cannot keep the administrator out or end his sessions, and the answers do not tell which
names exist. The audit log keeps every outcome, never the text typed as a name unless it is an account."""

from __future__ import annotations

import re

import pyotp
import pytest
from flask.testing import FlaskClient

from appliance.audit import AuditLog
from tests.webui_fixtures import PASSWORD, Box, audit_actions, box_fixture, csrf, session_token  # noqa: F401
from webui.throttle import (
    ACCOUNT_MAX_FAILURES,
    BASE_DELAY,
    FREE_TRIES,
    MAX_DELAY,
    Hold,
    SignInThrottle,
    pair_delay,
)

ATTACKER = "192.168.10.66"


def at(box: Box, remote: str) -> FlaskClient:
    client = box.client()
    client.environ_base["REMOTE_ADDR"] = remote
    return client


def try_password(client: FlaskClient, name: str, password: str) -> tuple[int, str]:
    """The status and the message of one try on the sign-in page."""
    token = csrf(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "username": name, "password": password})
    message = re.search(r'<p class="notice error" role="alert">([^<]*)</p>', r.get_data(as_text=True))
    return r.status_code, message.group(1) if message else ""


def test_delays_grow_per_name_and_address(box: Box) -> None:
    assert [pair_delay(n) for n in range(FREE_TRIES, FREE_TRIES + 7)] == [30, 60, 120, 240, 480, 900, 900]
    client = at(box, ATTACKER)
    for _ in range(FREE_TRIES):
        assert try_password(client, "staff", "wrong-password-x")[0] == 401
    status, page = try_password(client, "staff", PASSWORD)  # even the right password waits now
    assert status == 429 and "1分ほど待って" in page
    box.clock.advance(BASE_DELAY + 1)
    assert try_password(client, "staff", "wrong-password-x")[0] == 401
    box.clock.advance(BASE_DELAY + 1)
    assert try_password(client, "staff", PASSWORD)[0] == 429  # the second delay is twice as long
    box.clock.advance(BASE_DELAY)
    box.login(client, "staff")  # the run of failures ends with a success
    actions = audit_actions(box, "staff")
    assert actions.count("web.login_failed") == FREE_TRIES + 1
    assert actions.count("web.lockout") == 1 and actions.count("web.login_locked") == 2
    assert "web.login" in actions


def test_an_attacker_at_one_pc_cannot_keep_the_admin_out_or_end_his_sessions(box: Box) -> None:
    working = box.client()
    box.login(working, "admin")  # the administrator is in the middle of an incident
    attacker = at(box, ATTACKER)
    for _ in range(FREE_TRIES + 3):
        try_password(attacker, "admin", "wrong-password-x")
    assert try_password(attacker, "admin", PASSWORD)[0] == 429
    assert working.get("/").status_code == 200  # his open session is untouched
    box.login(box.client(), "admin")  # and he signs in from his own PC as usual
    assert working.get("/settings/").status_code == 200


def test_wrong_totp_codes_are_held_back_too(box: Box) -> None:
    client = at(box, ATTACKER)
    token = csrf(client, "/login")
    client.post("/login", data={"csrf_token": token, "username": "admin", "password": PASSWORD})
    token = csrf(client, "/login/totp")
    for _ in range(FREE_TRIES):
        assert client.post("/login/totp", data={"csrf_token": token, "code": "000000"}).status_code == 401
    code = pyotp.TOTP(box.secrets["admin"]).at(box.clock.now)  # the right code, not used yet
    r = client.post("/login/totp", data={"csrf_token": token, "code": code})
    assert r.status_code == 429 and "待って" in r.get_data(as_text=True)
    box.login(box.client(), "admin")  # from another address: no wait


def test_the_answers_do_not_tell_which_names_exist(box: Box) -> None:
    answers = {}
    for i, name in enumerate(("staff", "no-such-user")):
        client = at(box, f"192.168.10.{70 + i}")
        answers[name] = [try_password(client, name, "wrong-password-x") for _ in range(FREE_TRIES + 2)]
    assert answers["staff"] == answers["no-such-user"]
    assert [status for status, _ in answers["staff"]] == [401] * FREE_TRIES + [429, 429]


def test_the_typed_name_is_logged_only_when_it_is_an_account(box: Box) -> None:
    typed = "Sakura-Pass-2026!"  # a password typed into the name field by mistake
    client = at(box, ATTACKER)
    for _ in range(FREE_TRIES + 1):
        try_password(client, typed, "x")
    try_password(client, "staff", "wrong-password-x")
    entries = AuditLog(box.ctx.db).search(limit=100)
    assert all(typed not in repr(e) for e in entries)
    failed = [e for e in entries if e.action == "web.login_failed"]
    assert sorted({e.actor for e in failed}) == ["staff", "unknown"]
    assert {e.remote for e in failed} == {ATTACKER}
    assert {e.actor for e in entries if e.action in ("web.lockout", "web.login_locked")} == {"unknown"}


def test_rate_limit_per_address_leaves_other_addresses_alone(box: Box) -> None:
    client = at(box, ATTACKER)
    for i in range(20):
        try_password(client, f"nobody{i}", "x" * 13)
    assert try_password(client, "staff", PASSWORD)[0] == 429
    assert "web.login_rate_limited" in audit_actions(box, "staff")
    box.login(box.client(), "staff")


def test_guessing_spread_over_many_addresses_stops_at_the_ceiling_except_known_ones(box: Box) -> None:
    throttle = SignInThrottle(box.ctx.db, b"k" * 32, clock=box.clock)
    throttle.success("admin", "192.168.10.5")  # the administrator's own PC
    for i in range(ACCOUNT_MAX_FAILURES):  # below the per-address delays everywhere
        started = throttle.failure("admin", f"10.0.{i // (FREE_TRIES - 1)}.{i % (FREE_TRIES - 1)}")
    assert [h.scope for h in started] == ["name"]
    hold = throttle.hold("admin", "10.9.9.9")
    assert hold is not None and hold.scope == "name"
    assert throttle.hold("admin", "192.168.10.5") is None
    assert throttle.hold("staff", "10.9.9.9") is None
    assert throttle.held_back(["admin", "staff"]) == {"admin"}
    box.clock.advance(3601)
    assert throttle.hold("admin", "10.9.9.9") is None


def test_the_longest_delay_is_capped(box: Box) -> None:
    throttle = SignInThrottle(box.ctx.db, b"k" * 32, clock=box.clock)
    for _ in range(FREE_TRIES + 30):
        throttle.failure("staff", ATTACKER)
    hold = throttle.hold("staff", ATTACKER)
    assert hold == Hold(MAX_DELAY, "name_address")
    box.clock.advance(MAX_DELAY + 1)
    assert throttle.hold("staff", ATTACKER) is None


@pytest.mark.parametrize("name", ["staff", "admin"])
def test_the_administrator_lifts_a_hold_on_the_accounts_page(box: Box, name: str) -> None:
    client = at(box, ATTACKER)
    for _ in range(FREE_TRIES):
        try_password(client, name, "wrong-password-x")
    admin = box.client()
    box.login(admin, "admin")
    page = admin.get("/accounts/").get_data(as_text=True)
    assert page.count("ログイン制限中") == 1 and "制限を解除" in page
    r = admin.post(f"/accounts/{name}/unlock", data={"csrf_token": session_token(admin)})
    assert r.status_code == 302 and "accounts.unlock" in audit_actions(box, "admin")
    assert "ログイン制限中" not in admin.get("/accounts/").get_data(as_text=True)
    box.login(client, name)


def test_retention_keeps_the_addresses_the_administrator_signed_in_from(box: Box) -> None:
    """Retention prunes by the throttle's own rule: a day-old success still makes his PC a known address."""
    from appliance.retention import Policy
    from webui.retention import retain

    throttle = SignInThrottle(box.ctx.db, b"k" * 32, clock=box.clock)
    throttle.success("admin", "192.168.10.5")
    box.clock.advance(2 * 86400)
    retain(box.ctx.db, Policy(now=box.clock(), max_bytes=1 << 30))
    for i in range(ACCOUNT_MAX_FAILURES):
        throttle.failure("admin", f"10.0.{i // (FREE_TRIES - 1)}.{i % (FREE_TRIES - 1)}")
    assert throttle.hold("admin", "10.9.9.9") is not None
    assert throttle.hold("admin", "192.168.10.5") is None
