"""Session bookkeeping against the kernel's answer: a session is ended only when its revoke worked, a
failed revoke is retried by the expiry worker, a sign-in never leaves an admitted address without a row.

The gate here is an in-memory stand-in for the nft set whose failures the test switches on; the same
paths against the real nft set and conntrack run in tests/integration/test_vpn_revoke.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyotp
import pytest

from appliance.config.load import parse_config
from appliance.errors import ApplyError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from vpn.credentials import Credentials
from vpn.keys import generate_keypair
from vpn.sessions import SessionManager
from vpn.store import DeviceStore

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
CFG = parse_config(
    EXAMPLE.replace('hours: {start: "07:00", end: "23:00"}', 'hours: {start: "00:00", end: "00:00"}')
).model
PASSWORD = "correct horse battery"
T0 = 1_790_000_000.0


class SetGate:
    """Holds admitted addresses like the nft set does; `fail_revoke`/`fail_admit` make the next calls raise."""

    def __init__(self) -> None:
        self.admitted: set[str] = set()
        self.fail_revoke = 0
        self.fail_admit_after_add = False

    def admit(self, user: str, ip: str, timeout_s: int) -> None:
        self.admitted.add(ip)
        if self.fail_admit_after_add:  # e.g. element added, then the bookkeeping after it failed
            raise ApplyError("失敗", "admit failed after the element was added")

    def revoke(self, user: str, ip: str) -> int:
        if self.fail_revoke:
            self.fail_revoke -= 1
            raise ApplyError("接続の切断に失敗しました", "conntrack -D failed: timeout")
        self.admitted.discard(ip)
        return 0


PORTAL = "http://10.99.0.1:8443"  # the portal as a tunnel reaches it (the example's vpn.address)


@pytest.fixture()
def rig(tmp_path):
    ctx = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    ctx.paths.ensure()
    ctx.db.migrate()
    now = [T0]
    dev = DeviceStore(ctx.db).add("yamada", "pc", generate_keypair()[1], CFG.vpn.address, CFG.vpn.address6)
    secret = Credentials(ctx.db).set("yamada", PASSWORD)
    gate = SetGate()
    mgr = SessionManager(ctx, lambda: CFG, clock=lambda: now[0], gate=gate)
    return mgr, gate, dev, secret, now


def sign_in(mgr, dev, secret, now):
    return mgr.sign_in(dev.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0]))


def open_rows(mgr) -> list[sqlite3.Row]:
    with mgr.ctx.db.connection() as conn:
        return conn.execute("SELECT * FROM vpn_sessions WHERE ended IS NULL").fetchall()


def test_failed_revoke_keeps_session_pending_and_expiry_worker_retries(rig):
    mgr, gate, dev, secret, now = rig
    assert sign_in(mgr, dev, secret, now).allowed and dev.ip4 in gate.admitted
    gate.fail_revoke = 1
    assert mgr.logout(dev.ip4) == []  # not ended: the kernel still admits the address
    assert dev.ip4 in gate.admitted
    [row] = open_rows(mgr)
    assert row["revoke_pending"] == "logout"
    assert mgr.current(dev.ip4) is None  # the portal no longer shows it as connected
    assert "vpn.session.revoke_failed" in {e.action for e in mgr.audit.search(limit=50)}
    gate.fail_revoke = 1
    assert mgr.expire_due() == []  # a retry that fails again: still pending, audited once only
    assert [e.action for e in mgr.audit.search(limit=50)].count("vpn.session.revoke_failed") == 1
    assert open_rows(mgr)[0]["revoke_pending"] == "logout"
    now[0] += 1
    ended = mgr.expire_due()  # the worker's tick: the retry works now
    assert [(s.id, s.tunnel_ip) for s in ended] == [(row["id"], dev.ip4)]
    assert dev.ip4 not in gate.admitted and open_rows(mgr) == []
    assert mgr.list()[0].end_reason == "logout"  # the first reason is kept


def test_one_failed_revoke_does_not_stop_the_others(rig):
    mgr, gate, dev, secret, now = rig
    other = DeviceStore(mgr.ctx.db).add("yamada", "phone", generate_keypair()[1], CFG.vpn.address, None)
    sign_in(mgr, dev, secret, now)
    now[0] += 30
    mgr.sign_in(other.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0]))
    assert gate.admitted == {dev.ip4, other.ip4}
    gate.fail_revoke = 1  # the first of the two fails, the second must still be cut
    ended = mgr.end_user("yamada", "disabled")
    assert len(ended) == 1 and len(gate.admitted) == 1
    assert mgr.pending()[0].tunnel_ip in gate.admitted
    assert len(mgr.retry_pending()) == 1 and gate.admitted == set()


def test_signin_revokes_the_session_it_replaces(rig):
    mgr, gate, dev, secret, now = rig
    sign_in(mgr, dev, secret, now)
    first = open_rows(mgr)[0]["id"]
    revoked: list[str] = []
    real_revoke = gate.revoke
    gate.revoke = lambda user, ip: revoked.append(ip) or real_revoke(user, ip)
    now[0] += 30
    assert sign_in(mgr, dev, secret, now).allowed
    assert revoked == [dev.ip4]  # the old admission (and its connections) were cut
    assert mgr.list()[-1].id == first and mgr.list()[-1].end_reason == "replaced"
    assert dev.ip4 in gate.admitted and len(open_rows(mgr)) == 1


def test_signin_refused_while_the_replaced_session_cannot_be_revoked(rig):
    mgr, gate, dev, secret, now = rig
    sign_in(mgr, dev, secret, now)
    gate.fail_revoke = 1
    now[0] += 30
    with pytest.raises(ApplyError):
        sign_in(mgr, dev, secret, now)
    assert len(open_rows(mgr)) == 1 and open_rows(mgr)[0]["revoke_pending"] == "replaced"


def test_signin_row_exists_before_admit_and_failed_admit_is_undone(rig):
    mgr, gate, dev, secret, now = rig
    seen: list[int] = []
    real_admit = gate.admit
    gate.admit = lambda user, ip, t: seen.append(len(open_rows(mgr))) or real_admit(user, ip, t)
    sign_in(mgr, dev, secret, now)
    assert seen == [1]  # the row was there when the kernel was asked
    mgr.logout(dev.ip4)
    gate.fail_admit_after_add = True
    now[0] += 30
    with pytest.raises(ApplyError):
        sign_in(mgr, dev, secret, now)
    assert dev.ip4 not in gate.admitted and open_rows(mgr) == []
    assert mgr.list()[0].end_reason == "admit_failed"


def test_failed_insert_admits_nothing(rig):
    mgr, gate, dev, secret, now = rig
    with mgr.ctx.db.transaction() as conn:  # a database that refuses the row (e.g. full disk, constraint)
        conn.execute(
            "CREATE TRIGGER no_sessions BEFORE INSERT ON vpn_sessions BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(sqlite3.DatabaseError):
        sign_in(mgr, dev, secret, now)
    assert gate.admitted == set()


def test_portal_logout_says_when_the_cut_is_still_pending(rig):
    from vpn.portal import create_portal_app
    from vpn.portal_view import LocalPortal

    mgr, gate, dev, secret, now = rig
    sign_in(mgr, dev, secret, now)
    c, env = create_portal_app(LocalPortal(mgr)).test_client(), {"REMOTE_ADDR": dev.ip4}
    page = c.get("/", environ_base=env, base_url=PORTAL).get_data(as_text=True)
    token = page.split('name="csrf" value="')[1].split('"')[0]
    gate.fail_revoke = 1
    res = c.post("/logout", data={"csrf": token}, environ_base=env, base_url=PORTAL)
    assert res.status_code == 503 and "切断を処理中" in res.get_data(as_text=True)
    res = c.post("/logout", data={"csrf": token}, environ_base=env, base_url=PORTAL)  # the retry works
    assert res.status_code == 200 and "接続を終えました" in res.get_data(as_text=True)
    assert gate.admitted == set()


def test_a_rebound_or_foreign_page_cannot_log_the_doctor_out(rig):
    """DNS rebinding (another name for the portal's address) and a form posted from another site."""
    from vpn.portal import create_portal_app
    from vpn.portal_view import LocalPortal

    mgr, gate, dev, secret, now = rig
    sign_in(mgr, dev, secret, now)
    admitted = set(gate.admitted)
    assert admitted
    c, env = create_portal_app(LocalPortal(mgr)).test_client(), {"REMOTE_ADDR": dev.ip4}
    page = c.get("/", environ_base=env, base_url=PORTAL).get_data(as_text=True)
    token = page.split('name="csrf" value="')[1].split('"')[0]
    res = c.post("/logout", data={"csrf": token}, environ_base=env, base_url="http://rebind.example:8443")
    assert res.status_code == 421
    res = c.post("/logout", data={"csrf": token}, environ_base=env, base_url=PORTAL,
                 headers={"Origin": "http://rebind.example"})  # fmt: skip
    assert res.status_code == 403
    assert gate.admitted == admitted and mgr.current(dev.ip4) is not None
