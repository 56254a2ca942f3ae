"""A new device plugged into the lab clinic appears in the inventory with its vendor, and raises one event."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.topology import HostSpec
from tests.integration.test_firewall_helpers import clinic_lab, in_ns, state_ctx

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
NEW_MAC = "00:1b:63:84:45:e6"  # an Apple OUI


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    with clinic_lab(str(tmp_path_factory.mktemp("fwinv"))) as env:
        yield env


def _scan(cfg, state: str) -> tuple[list[str], list[dict], list[dict]]:
    from firewall.inventory import Inventory

    inv = Inventory(state_ctx(state), cfg)
    return inv.scan(), inv.devices(), inv.events()


def test_new_device_appears_once_with_vendor(clinic: tuple) -> None:
    lab, cfg, state = clinic
    lab.add_host(HostSpec("ipad", "lan", "192.168.10.77/24", "192.168.10.1"), mac=NEW_MAC)
    assert lab.ping("ipad", "192.168.10.1")  # the box learns its MAC (neighbour table)
    new, devices, events = in_ns(lab.ns("box"), _scan, cfg, state)
    assert NEW_MAC in new
    dev = next(d for d in devices if d["mac"] == NEW_MAC)
    assert (dev["ip"], dev["zone"], dev["interface"], dev["vendor"]) == (
        "192.168.10.77",
        "lan",
        "lan0",
        "Apple, Inc.",
    )
    assert not any(d["zone"] == "wan" for d in devices)  # the router on wan is not a clinic device
    assert [e["mac"] for e in events].count(NEW_MAC) == 1
    new_again, _devices, events_again = in_ns(lab.ns("box"), _scan, cfg, state)
    assert NEW_MAC not in new_again and [e["mac"] for e in events_again].count(NEW_MAC) == 1
    argv = [sys.executable, "-m", "appliance.cli", "--config", str(REPO / "examples" / "clinic.yaml"),
            "--state-dir", state, "fw", "devices", "--csv"]  # fmt: skip
    res = lab.run("box", argv, cwd=str(REPO), check=False)
    assert res.returncode == 0 and f'{NEW_MAC},"Apple, Inc.",192.168.10.77,lan,lan0' in res.stdout, res.stderr
