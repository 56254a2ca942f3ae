"""dnsmasq.conf rendering: deterministic text, ranges per zone, never on wan, names only when valid DNS."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.paths import Paths
from firewall.dnsmasq import render_dnsmasq
from tests.unit.test_firewall_helpers import config

PATHS = Paths(config=Path("/etc/mamori/config.yaml"), state_dir=Path("/var/lib/mamori"))


@pytest.mark.parametrize(
    ("changes", "line", "present"),
    [
        ({}, "dhcp-range=set:lan0,192.168.10.100,192.168.10.199,255.255.255.0,43200", True),
        ({}, "dhcp-range=set:guest0,192.168.20.100,192.168.20.199,255.255.255.0,7200", True),
        ({}, "dhcp-option=tag:guest0,option:dns-server,192.168.20.1", True),
        (
            {},
            "dhcp-option=tag:guest0,option:ntp-server,192.168.20.1",
            False,
        ),  # guests get no NTP from the box
        ({}, "\ninterface=wan0\n", False),
        ({}, "except-interface=wan0", True),
        ({}, "server=198.51.100.53", True),
        ({}, "host-record=pacs.clinic.lan,pacs,192.168.10.30", True),
        ({}, "電子カルテ", False),  # not a DNS name: no record rather than a broken one
        ({"dhcp": {"enabled": False}}, "dhcp-range=", False),
        ({"dhcp": {"domain": "sakura.lan"}}, "local=/sakura.lan/", True),
        (
            {"hosts": [{"name": "printer", "ip": "192.168.10.40", "mac": "52:54:00:12:34:56"}]},
            "dhcp-host=52:54:00:12:34:56,192.168.10.40,printer",
            True,
        ),
        (
            {"hosts": [{"name": "プリンター", "ip": "192.168.10.40", "mac": "52:54:00:12:34:56"}]},
            "dhcp-host=52:54:00:12:34:56,192.168.10.40\n",
            True,
        ),
    ],
)
def test_lines(changes: dict, line: str, present: bool) -> None:
    if "hosts" in changes:
        changes = {**changes, "firewall": {"rules": []}, "groups": []}
    text = render_dnsmasq(config(**changes), PATHS)
    assert (line in text) is present, text


def test_deterministic() -> None:
    assert render_dnsmasq(config(), PATHS) == render_dnsmasq(config(), PATHS)
