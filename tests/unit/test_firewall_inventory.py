"""Inventory without the network: lease parsing (hostile input too), vendors, one event per new device."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from firewall.inventory import Inventory, Sighting, clean_hostname, parse_leases
from firewall.oui import vendor
from tests.unit.test_firewall_helpers import config


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (
            "1795660000 00:1b:63:aa:bb:cc 192.168.10.120 iPad 01:00:1b:63:aa:bb:cc",
            ("00:1b:63:aa:bb:cc", "iPad"),
        ),
        ("1795660000 00:1B:63:AA:BB:CC 192.168.10.121 * *", ("00:1b:63:aa:bb:cc", "")),
        (
            "1795660000 00:1b:63:aa:bb:cc 192.168.10.122 <script>x;rm${IFS}-rf * ",
            ("00:1b:63:aa:bb:cc", "scriptxrmIFS-rf"),
        ),
        ("garbage", None),
        ("1795660000 not-a-mac 192.168.10.1 host *", None),
        ("soon 00:1b:63:aa:bb:cc 192.168.10.1 host *", None),
    ],
)
def test_parse_leases(line: str, parsed: tuple | None) -> None:
    sightings, bad = parse_leases(line)
    if parsed is None:
        assert (sightings, bad) == ([], 1)
    else:
        assert bad == 0 and (sightings[0].mac, sightings[0].hostname) == parsed


def test_hostname_is_bounded() -> None:
    assert len(clean_hostname("a" * 500)) == 63


@pytest.mark.parametrize(
    ("mac", "expected"),
    [("00:1b:63:12:34:56", "Apple, Inc."), ("02:1b:63:12:34:56", ""), ("zz", ""), ("ff:ff:ff:00:00:00", "")],
)
def test_vendor(mac: str, expected: str) -> None:
    assert vendor(mac) == expected


def test_new_device_raises_one_event(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    inv = Inventory(Context(Paths(state_dir=tmp_path), db), config())
    first = inv.observe([Sighting("00:1b:63:aa:bb:cc", "192.168.10.120", "lan0", "ipad")], now=100.0)
    again = inv.observe([Sighting("00:1b:63:aa:bb:cc", "192.168.10.121", "lan0")], now=200.0)
    wan = inv.observe([Sighting("00:1b:63:00:00:01", "203.0.113.1", "wan0")], now=200.0)
    assert (first, again, wan) == (["00:1b:63:aa:bb:cc"], [], [])
    [dev] = inv.devices()
    assert (dev["ip"], dev["zone"], dev["hostname"], dev["vendor"], dev["first_seen"], dev["last_seen"]) == (
        "192.168.10.121", "lan", "ipad", "Apple, Inc.", 100.0, 200.0)  # fmt: skip
    [event] = inv.events()
    assert event["kind"] == "new_device" and "新しい機器が接続されました" in event["message_ja"]
    assert inv.csv().splitlines()[0] == "mac,vendor,ip,zone,interface,hostname,first_seen,last_seen"


def test_ipv4_is_preferred_over_link_local(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    inv = Inventory(Context(Paths(state_dir=tmp_path), db), config())
    mac = "00:1b:63:aa:bb:01"
    inv.observe([Sighting(mac, "192.168.10.20", "lan0"), Sighting(mac, "fe80::1", "lan0")], now=1.0)
    inv.observe([Sighting(mac, "fe80::1", "lan0")], now=2.0)
    [dev] = inv.devices()
    assert (dev["ip"], dev["last_seen"]) == ("192.168.10.20", 2.0)
    assert len(inv.events()) == 1
