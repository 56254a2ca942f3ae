"""The box's IPv6 name follows a prefix change (issue 17.2), nothing faked: a DS-Lite-like clinic line (no way in
over IPv4, IPv6 through the home gateway's filter), the vendor's hub running a real bind9 `named` with a
TSIG-protected dynamic zone (the configuration docs/vpn-lines.md gives the vendor), and the real daemon whose
`vpn-ddns` worker sends RFC 2136 updates. The doctor's .conf names the host; his namespace resolves it through
that server (/etc/netns/<ns>/resolv.conf), as `wg set ... endpoint NAME:PORT` does at set time.

The story: the box publishes its address, the doctor connects over IPv6 with MFA; the line is renumbered (the
home gateway hands out a new prefix, the old one stops working); the box updates the name by itself; the doctor's
same config, brought up again, reaches the box at the new address and signs in. A wrong TSIG secret is refused by
named and the box says so in Japanese. Processes are stopped by PID (Lab.down); /etc/netns/<ns> is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lab import dns as labdns
from lab import lines
from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.topology import Lab
from tests.integration.test_firewall_helpers import wait_until
from tests.integration.test_vpn_gate import ECHO, PASSWORD, fresh_code, portal, totp_secret
from vpn.client import parse_client_conf, up_client
from vpn.wg import WgInterface

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("named") is None, reason="run make setup (bind9)"),
]
EMR = "192.168.10.10"
ZONE, NAME, KEY = "v6.example.jp", "clinic-17.v6.example.jp", "clinic-17"
HUB6 = lines.HOST6["hub"].split("/")[0]
OLD = ("2001:db8:17::1", "2001:db8:17::2")  # the home gateway's inside address and the box's, first prefix
NEW = ("2001:db8:18::1", "2001:db8:18::2")  # after the renumber


@dataclass
class Clinic:
    lab: Lab
    box: Box
    dns: labdns.DnsServer
    tmp: Path
    secret: str

    def ddns(self) -> dict:
        return json.loads(self.box.mamori("vpn", "ddns", "status", "--json", check=False).stdout)


def slaac(lab: Lab, prefix: tuple[str, str]) -> None:
    """What the box learns from the home gateway's router advertisement: an address with lifetimes (not set by
    hand: no IFA_F_PERMANENT) and the default route; the gateway lets the doctor's UDP in to that address."""
    router, box = prefix
    lab.run("router", ["ip", "-6", "addr", "replace", f"{router}/64", "dev", "eth1", "nodad"])
    lab.run("box", ["ip", "-6", "addr", "add", f"{box}/64", "dev", "wan0", "nodad",
                    "valid_lft", "7200", "preferred_lft", "3600"])  # fmt: skip
    lab.run("box", ["ip", "-6", "route", "replace", "default", "via", router, "dev", "wan0"])
    lab.run("router", ["nft", "insert", "rule", "ip6", "labline6", "inward", "iifname", "eth0", "ip6", "daddr",
                       box, "udp", "dport", "51820", "accept"])  # fmt: skip


def renumber(lab: Lab) -> None:
    """The home gateway comes back with a new prefix: the old one is gone from the line (its address on the
    gateway removed, the box's deprecated as the kernel does when the prefix's lifetime ends)."""
    lab.run("router", ["ip", "-6", "addr", "del", f"{OLD[0]}/64", "dev", "eth1"])
    lab.run("box", ["ip", "-6", "addr", "change", f"{OLD[1]}/64", "dev", "wan0", "valid_lft", "600",
                    "preferred_lft", "0"])  # fmt: skip
    slaac(lab, NEW)


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Clinic]:
    lab = Lab(f"dd{os.getpid() % 10000}")
    box: Box | None = None
    etc: Path | None = None
    try:
        lab.up()
        lab.nat_clinic()  # DS-Lite / carrier NAT: nothing gets in over IPv4
        hub = lab.add_hub()
        lines.router_ipv6(lab, 51820)  # IPv6 on the outside; the gateway's filter (pinholes added by slaac)
        secret = labdns.new_secret()
        server = labdns.start_named(lab, hub.key, tmp_path / "named", HUB6, ZONE, KEY, secret, NAME)
        etc = labdns.resolver(lab, "doctor", HUB6)
        data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        data["ids"]["enabled"] = False  # two cores: Suricata is not what is tested here
        for user in data["vpn"]["users"]:
            user.pop("hours", None)  # the test must pass at any hour
        data["vpn"].update(path="ipv6", endpoint6=NAME,
                           ddns={"server": HUB6, "zone": ZONE, "tsig_key_name": KEY, "ttl": 60})  # fmt: skip
        box = make_box(lab, tmp_path / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        box.mamori("vpn", "ddns", "set-secret", stdin=secret + "\n")
        box.mamori("config", "apply", "-m", "IPv6 の名前")
        slaac(lab, OLD)
        lab.spawn("emr", [sys.executable, "-c", ECHO, "443", "22"])
        box.start_daemon()
        yield Clinic(lab, box, server, tmp_path, secret)
    finally:
        try:
            if box is not None:
                box.stop_daemon()
            for key, name, run_dir in (("box", lab.wg_name(), tmp_path / "state" / "run"),
                                       ("doctor", lab.wg_name("d"), tmp_path)):  # fmt: skip
                WgInterface(name, run_dir=run_dir, netns=lab.ns(key)).delete()
        finally:
            lab.down()
            if etc is not None:
                shutil.rmtree(etc, ignore_errors=True)


def connect(c: Clinic, conf_text: str, totp: str) -> None:
    """The doctor's device (re)starts the tunnel from the same .conf (the name is resolved now) and signs in."""
    lab = c.lab
    WgInterface(lab.wg_name("d"), run_dir=c.tmp, netns=lab.ns("doctor")).delete()
    up_client(parse_client_conf(conf_text), lab.wg_name("d"), c.tmp, netns=lab.ns("doctor"))
    assert wait_until(lambda: portal(lab, "doctor", "get")[0] == 200, timeout=30) is not None
    status, body = portal(lab, "doctor", "login", PASSWORD, fresh_code(totp))
    assert status == 200 and "接続中です" in body, body
    assert wait_until(lambda: lab.tcp_connect("doctor", EMR, 443, timeout=1), timeout=10) is not None


def test_the_name_follows_a_renumbered_prefix_and_the_doctor_gets_in_again(clinic: Clinic) -> None:
    c, lab = clinic, clinic.lab
    # at start the box publishes its address (signed with the clinic's key, checked by a query after)
    assert wait_until(lambda: c.ddns().get("address") == OLD[1], timeout=30) is not None, c.ddns()
    assert c.dns.aaaa(NAME) == {OLD[1]}
    assert c.dns.aaaa(NAME, "doctor") == {OLD[1]}  # the doctor's side asks the same server
    text = c.box.mamori("vpn", "ddns", "status").stdout
    assert f"IPv6 の名前 {NAME} は {OLD[1]} を指しています" in text
    out = c.tmp / "doctor"
    res = c.box.mamori("vpn", "add", "yamada", "home-pc", "--out", str(out), "--password-stdin",
                       stdin=PASSWORD + "\n")  # fmt: skip
    conf = (out / "yamada-home-pc.conf").read_text(encoding="utf-8")
    assert f"Endpoint = {NAME}:51820" in conf and "IPv6 で直接" in conf
    connect(c, conf, totp_secret(res.stdout))
    peers = lab.run("box", ["wg", "show", lab.wg_name(), "endpoints"]).stdout
    assert "[2001:db8:ffff::20]:" in peers, peers  # he came in over IPv6
    assert portal(lab, "doctor", "logout")[0] == 200

    renumber(lab)
    assert wait_until(lambda: c.ddns().get("address") == NEW[1], timeout=30) is not None, c.ddns()
    assert c.dns.aaaa(NAME) == {NEW[1]}  # the old address is gone from the name, not added beside it
    with sqlite3.connect(c.box.state_dir / "db" / "mamori.db") as db:
        audit = [
            json.loads(r[0]) for r in db.execute("SELECT detail FROM audit WHERE action = 'vpn.ddns.updated'")
        ]
    assert [(a["address"], a["previous"]) for a in audit] == [(OLD[1], ""), (NEW[1], OLD[1])], audit
    assert c.secret not in json.dumps(audit)
    connect(c, conf, totp_secret(res.stdout))  # the same .conf: no new config for the doctor
    peers = lab.run("box", ["wg", "show", lab.wg_name(), "endpoints"]).stdout
    assert "[2001:db8:ffff::20]:" in peers, peers

    # a wrong secret: named refuses the update, the record stays, the box says why in Japanese
    c.box.mamori("vpn", "ddns", "set-secret", stdin=labdns.new_secret() + "\n")
    res = c.box.mamori("vpn", "ddns", "update", check=False)
    assert res.returncode == 1
    assert "TSIG の鍵（名前・方式・secret）がサーバーと合っていません" in res.stdout, res.stdout + res.stderr
    assert c.dns.aaaa(NAME) == {NEW[1]}
    assert "clinic-17" in c.dns.log() and ("failed" in c.dns.log() or "BADSIG" in c.dns.log().upper())
    for path in (c.box.state_dir / "daemon.log",):
        assert c.secret not in path.read_text(encoding="utf-8", errors="replace")
