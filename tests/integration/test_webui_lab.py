"""The web UI as the clinic gets it: the real `mamori daemon` in the lab's box namespace starts the HTTPS
server on the management addresses only. From 受付PC (lan) it answers; from the patients' Wi-Fi (guest) and
from the internet, a scan finds no web UI at all."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from lab.box import Box, make_box
from lab.topology import Lab
from lab.waiting import wait_or_fail

pytestmark = pytest.mark.integration
BOX_LAN, BOX_GUEST, BOX_DEV, BOX_WAN = "192.168.10.1", "192.168.20.1", "192.168.30.1", "203.0.113.2"
FAST = [
    "nmap",
    "-n",
    "-Pn",
    "--max-retries",
    "1",
    "--max-rtt-timeout",
    "100ms",
    "--initial-rtt-timeout",
    "50ms",
]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Box]]:
    lab = Lab(f"wl{os.getpid()}")
    lab.up()
    box = None
    try:
        box = make_box(lab, tmp_path_factory.mktemp("weblab") / "state")
        box.start_daemon(wait=90)
        yield lab, box
    finally:
        if box is not None:
            box.stop_daemon()
        lab.down()


def _status(lab: Lab, host: str, url: str) -> str:
    res = lab.run(host, ["curl", "-sk", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}", url],
                  check=False, timeout=10)  # fmt: skip
    return res.stdout.strip()


def test_reception_reaches_the_web_ui(clinic: tuple[Lab, Box]) -> None:
    lab, _ = clinic
    wait_or_fail(
        lambda: _status(lab, "reception", f"https://{BOX_LAN}/healthz") == "200",
        60,
        "the web UI answers /healthz to the reception PC",
        step=0.5,
    )
    # A fresh box: no administrator yet, so the first page is the setup wizard (no default password).
    assert _status(lab, "reception", f"https://{BOX_LAN}/") == "302"
    res = lab.run(
        "reception", ["curl", "-sk", "--max-time", "3", "-D", "-", "-o", "/dev/null", f"https://{BOX_LAN}/"]
    )
    assert re.search(r"(?im)^location: /setup/", res.stdout), res.stdout


@pytest.mark.parametrize(("host", "target"), [("phone", BOX_GUEST), ("phone", BOX_LAN), ("attacker", BOX_WAN),
                                              ("xray", BOX_DEV)])  # fmt: skip
def test_scans_from_guest_wan_and_devices_find_no_web_ui(
    clinic: tuple[Lab, Box], host: str, target: str
) -> None:
    lab, _ = clinic
    test_reception_reaches_the_web_ui(clinic)  # the server is up, so "not open" means "not reachable"
    out = lab.run(host, [*FAST, "-sT", "-p", "80,443,8080,8443", target], timeout=60).stdout
    assert not re.search(r"^\d+/tcp\s+open\s", out, re.M), out
    assert _status(lab, host, f"https://{target}/") == "000"
