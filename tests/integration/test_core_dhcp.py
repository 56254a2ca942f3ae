"""A device that plugs into the clinic gets its address from the box's DHCP (real dnsmasq run by the real
daemon, a real DHCP client), and shows up in the device list once, with its name and zone."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lab.box import Box
from lab.waiting import wait_or_fail

pytestmark = pytest.mark.integration
PHONE_MAC = "02:42:ac:11:00:99"


def test_guest_phone_gets_a_lease_and_appears_in_the_device_list(box: Box) -> None:
    box.start_daemon()
    lab = box.lab
    lab.add_bare_host("newphone", "guest", mac=PHONE_MAC)
    lease = None
    for _ in range(10):  # dnsmasq is started by the daemon's worker; give it a moment (bounded)
        res = lab.run("newphone", ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3", "-T", "1",
                                   "-x", "hostname:patient-phone", "-s", "/bin/true"], check=False, timeout=30)  # fmt: skip
        lease = re.search(r"lease of (\S+) obtained", res.stdout + res.stderr)
        if lease:
            break
        time.sleep(1)
    assert lease, "no DHCP lease from the box"
    ip = lease.group(1)
    assert ip.startswith("192.168.20.") and 100 <= int(ip.rsplit(".", 1)[1]) <= 199  # the guest range
    leases = Path(box.state_dir / "dnsmasq.leases").read_text()
    assert PHONE_MAC in leases and "patient-phone" in leases

    def phone_row() -> str:
        listed = box.mamori("fw", "devices", "--csv").stdout
        return next((line for line in listed.splitlines() if PHONE_MAC in line), "")

    row = wait_or_fail(phone_row, 30, "the phone in `mamori fw devices`", step=1)
    assert ip in row and "guest" in row
