"""Revoking and re-issuing a device against a real WireGuard interface (wireguard-go) and the real nft
table, in a throwaway namespace: the key leaves the interface before the sessions are ended, so a failure
while ending them (here the database refuses the update) still leaves the key off the interface, and
running the revoke again finishes it instead of answering "no such device"."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pyotp
import pytest

from appliance.config.load import parse_config
from tests.integration.test_firewall_helpers import apply_config, in_ns, netns, state_ctx
from vpn.wg import WgInterface

pytestmark = pytest.mark.integration

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
CFG = parse_config(
    EXAMPLE.replace('hours: {start: "07:00", end: "23:00"}', 'hours: {start: "00:00", end: "00:00"}')
).model
PASSWORD = "correct horse battery"
IFNAME = f"wgp{os.getpid()}"
REFUSE = (
    "CREATE TRIGGER refuse BEFORE UPDATE OF ended ON vpn_sessions BEGIN SELECT RAISE(ABORT, 'disk full'); END"
)


def _scenario(state_dir: str) -> dict:
    """Runs inside the namespace: interface up, two devices (one re-issued), a session, a failing revoke."""
    from appliance.errors import NotFoundError
    from vpn.credentials import Credentials
    from vpn.provision import provision, revoke_device
    from vpn.sessions import SessionManager
    from vpn.subsystem import VpnSubsystem

    ctx = state_ctx(state_dir)
    sub = VpnSubsystem(ctx, ifname=IFNAME)
    plan = sub.render(CFG)
    sub.apply(plan)
    iface = sub.interface(plan)
    out: dict = {}
    pc = provision(ctx, CFG, "yamada", "pc", iface=iface).device
    secret = Credentials(ctx.db).set("yamada", PASSWORD)
    now = [time.time()]
    mgr = SessionManager(ctx, lambda: CFG, clock=lambda: now[0])
    assert mgr.sign_in(pc.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0])).allowed
    out["peers_before"] = sorted(iface.dump().peers) == [pc.public_key]
    with ctx.db.transaction() as conn:
        conn.execute(REFUSE)
    try:
        revoke_device(ctx, CFG, "yamada", "pc", iface=iface)
        out["first"] = "ok"
    except sqlite3.DatabaseError as exc:  # the refusal below; anything else fails the test
        out["first"] = type(exc).__name__
    out["peer_gone_after_failure"] = pc.public_key not in iface.dump().peers
    with ctx.db.transaction() as conn:
        conn.execute("DROP TRIGGER refuse")
    try:
        out["retry"] = revoke_device(ctx, CFG, "yamada", "pc", iface=iface).revoked is not None
    except NotFoundError:
        out["retry"] = "NotFound"
    out["open_sessions"] = len([s for s in mgr.list() if s.ended is None])
    out["reasons"] = [s.end_reason for s in mgr.list()]
    # re-issue with a failing session end: the new key is live and the old one gone all the same
    phone = provision(ctx, CFG, "yamada", "phone", iface=iface).device
    now[0] += 30
    assert mgr.sign_in(phone.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0])).allowed
    with ctx.db.transaction() as conn:
        conn.execute(REFUSE)
    out["reissue"] = "ok"
    try:
        provision(ctx, CFG, "yamada", "phone", iface=iface)
    except sqlite3.DatabaseError as exc:
        out["reissue"] = type(exc).__name__
    peers = iface.dump().peers
    out["reissue_old_gone"] = phone.public_key not in peers and len(peers) == 1
    return out


def test_revoke_takes_the_key_off_first_and_can_be_run_again(tmp_path):
    with netns("vp") as ns:
        try:
            in_ns(ns, apply_config, CFG, str(tmp_path))
            out = in_ns(ns, _scenario, str(tmp_path), timeout=90)
        finally:
            WgInterface(IFNAME, run_dir=tmp_path / "run", netns=ns).delete()
    assert out["peers_before"]
    assert out["first"] == "IntegrityError"  # the database refused: the revoke did not finish...
    assert out["peer_gone_after_failure"]  # ...but the key was already off the interface
    assert out["retry"] is True  # and running it again finishes it
    assert out["open_sessions"] == 0 and out["reasons"] == ["revoked"]
    assert out["reissue"] == "IntegrityError" and out["reissue_old_gone"]


def _race(state_dir: str) -> dict:
    """Runs inside the namespace: a revoke lands between a config apply's render and its set_peers."""
    import threading

    from appliance.apply import apply_lock
    from vpn.provision import provision, revoke_device
    from vpn.subsystem import VpnSubsystem

    ctx = state_ctx(state_dir)
    sub = VpnSubsystem(ctx, ifname=IFNAME)
    pc = provision(ctx, CFG, "yamada", "pc").device
    sub.apply(sub.render(CFG))
    iface = sub.interface(sub.render(CFG))
    out: dict = {"before": pc.public_key in iface.dump().peers}
    revoker = threading.Thread(target=revoke_device, args=(ctx, CFG, "yamada", "pc"), kwargs={"iface": iface})
    with apply_lock(ctx.paths):  # what ConfigService.apply holds around render + apply
        plan = sub.render(CFG)  # the config alone: the devices are read by apply
        revoker.start()
        revoker.join(1.0)
        out["revoke_waited_for_apply"] = revoker.is_alive()  # revoked in the store, its sync waits
        sub.apply(plan)  # whatever it sets, the revoke's sync after it has the last word
    revoker.join(20)
    out["revoke_done"] = not revoker.is_alive()
    out["after"] = pc.public_key in iface.dump().peers
    return out


def test_revoke_during_a_config_apply_is_not_undone_by_it(tmp_path):
    with netns("vq") as ns:
        try:
            out = in_ns(ns, _race, str(tmp_path), timeout=90)
        finally:
            WgInterface(IFNAME, run_dir=tmp_path / "run", netns=ns).delete()
    assert out["before"] and out["revoke_waited_for_apply"] and out["revoke_done"]
    assert out["after"] is False  # the revoked key is not on the interface at the end
