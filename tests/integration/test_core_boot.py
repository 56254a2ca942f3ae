"""Boot order on a box: the fail-closed policy holds until the daemon replaces it with the full policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.box import make_box
from lab.topology import Lab

pytestmark = pytest.mark.integration
FAIL_CLOSED = Path(__file__).resolve().parents[2] / "image" / "nftables" / "fail-closed.nft"


def test_fail_closed_until_the_daemon_applies_the_config(lab: Lab, tmp_path: Path) -> None:
    box = make_box(lab, tmp_path / "state")
    lab.run("box", ["nft", "-f", str(FAIL_CLOSED)])
    # The OS brings the interfaces up (as a box's networking would) before the daemon starts.
    for ifname, addr in (("wan0", "203.0.113.2/24"), ("lan0", "192.168.10.1/24")):
        lab.run("box", ["ip", "addr", "add", addr, "dev", ifname])
    lab.run("box", ["ip", "route", "add", "default", "via", "203.0.113.1"])
    lab.run("box", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    boot_tables = lab.run("box", ["nft", "list", "tables"]).stdout
    assert boot_tables.split() == ["table", "inet", "mamori"]
    assert "set blocked4" not in lab.run("box", ["nft", "list", "table", "inet", "mamori"]).stdout
    assert lab.ping("reception", "192.168.10.1")  # the box answers the LAN (setup must stay reachable)
    assert not lab.ping("reception", "198.51.100.10")  # but forwards nothing
    assert not lab.ping("attacker", "203.0.113.2")  # and ignores the internet

    box.start_daemon()  # first start: applies the prepared config file as revision 1
    full = lab.run("box", ["nft", "list", "table", "inet", "mamori"]).stdout
    assert "set blocked4" in full
    assert lab.ping("reception", "198.51.100.10", count=2)  # forwarded and masqueraded now
    assert not lab.ping("attacker", "192.168.10.10")
    history = box.mamori("config", "history").stdout
    assert "boot" in history and "system" in history
