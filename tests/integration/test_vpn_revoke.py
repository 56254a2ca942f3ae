"""Session revoke against the real nft set and the real conntrack, in a throwaway namespace: a revoke that
fails in the kernel (here conntrack cannot run) leaves the session open and pending, and the expiry
worker's retry ends it once the kernel side worked. A sign-in that replaces a session cuts the old one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyotp
import pytest

from appliance.config.load import parse_config
from firewall.render import vpn_set_name
from tests.integration.test_firewall_helpers import apply_config, in_ns, netns, set_elements, state_ctx

pytestmark = pytest.mark.integration

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
CFG = parse_config(
    EXAMPLE.replace('hours: {start: "07:00", end: "23:00"}', 'hours: {start: "00:00", end: "00:00"}')
).model
PASSWORD = "correct horse battery"
T0 = 1_790_000_000.0
SET = vpn_set_name("yamada")


def _scenario(state_dir: str) -> dict:
    """Runs inside the namespace, with the firewall table applied: the real FirewallGate throughout."""
    from vpn.credentials import Credentials
    from vpn.keys import generate_keypair
    from vpn.sessions import SessionManager
    from vpn.store import DeviceStore

    ctx = state_ctx(state_dir)
    now = [T0]
    dev = DeviceStore(ctx.db).add("yamada", "pc", generate_keypair()[1], CFG.vpn.address, CFG.vpn.address6)
    secret = Credentials(ctx.db).set("yamada", PASSWORD)
    mgr = SessionManager(ctx, lambda: CFG, clock=lambda: now[0])
    out: dict = {"ip": dev.ip4}
    assert mgr.sign_in(dev.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0])).allowed
    out["after_signin"] = _elements()
    # a conntrack that cannot run: the set element goes, the cut does not, so the session is not ended
    path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        out["logout"] = [s.id for s in mgr.logout(dev.ip4)]
    finally:
        os.environ["PATH"] = path
    out["pending"] = [(s.tunnel_ip, s.revoke_pending) for s in mgr.pending()]
    now[0] += 1
    out["retried"] = [s.end_reason for s in mgr.expire_due()]
    out["pending_after"] = len(mgr.pending())
    out["reasons"] = [s.end_reason for s in mgr.list()]
    # a second sign-in over an open one: the first admission is cut, the second is in the set
    now[0] += 30
    mgr.sign_in(dev.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0]))
    now[0] += 30
    mgr.sign_in(dev.ip4, PASSWORD, pyotp.TOTP(secret).at(now[0]))
    out["replaced"] = [s.end_reason for s in mgr.list()]
    out["history"] = [r[0] for r in ctx.db.connect().execute("SELECT action FROM fw_history ORDER BY id")]
    out["final"] = _elements()
    return out


def _elements() -> list[str]:
    res = subprocess.run(["nft", "-j", "list", "set", "inet", "mamori", SET], capture_output=True, text=True,
                         check=True)  # fmt: skip
    sets = [obj["set"] for obj in json.loads(res.stdout)["nftables"] if "set" in obj]
    return [e["elem"]["val"] if isinstance(e, dict) else e for s in sets for e in s.get("elem", [])]


def test_failed_kernel_revoke_is_pending_then_retried(tmp_path):
    with netns("vr") as ns:
        in_ns(ns, apply_config, CFG, str(tmp_path))
        out = in_ns(ns, _scenario, str(tmp_path))
        assert out["after_signin"] == [out["ip"]]
        assert out["logout"] == []  # not reported as ended: its connections were not cut
        assert out["pending"] == [(out["ip"], "logout")]
        assert out["retried"] == ["logout"] and out["pending_after"] == 0
        assert out["reasons"] == ["logout"]
        assert out["replaced"] == ["", "replaced", "logout"]
        assert out["history"].count("revoke_vpn") == 3  # failed try, retry, replaced
        assert out["final"] == [out["ip"]] and set_elements(ns, SET) == [out["ip"]]
