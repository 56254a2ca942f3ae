"""Fleet config benchmark (issue 15): the time to roll one config change to the lab's boxes with real Ansible,
and a projection for 10 and 100 boxes.

lab/fleet.py builds a hub and BOXES clinics (real daemons behind NAT routers, no IDS); lab/fleet_ansible.py
installs the mamori.clinic collection and runs the example playbook from the hub namespace, over each box's
management link. Two real changes are measured (building the fleet is not):

- `one batch`: a change to every box at once (serial = forks = BOXES): what "roll one change" costs here;
- `one by one`: the next change with serial 1, so each batch is one box: the time of a one-box batch (b1).

Projection (computed, not measured): a batch of s boxes costs b1 plus a marginal cost c per extra box,
c = (one batch - b1) / (BOXES - 1), which on this shared 2-core machine is mostly the boxes' own CPU (every lab
box applies on the same two cores) and so over-estimates a real fleet, where each box applies on its own CPU;
N boxes with serial s (forks >= s) take ceil(N / s) * (b1 + (s - 1) * c).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from pathlib import Path

import yaml

from lab.box import EXAMPLE_CONFIG
from lab.fleet import Fleet
from lab.fleet_ansible import Controller

BOXES = 3


def _change(*comments: str) -> dict:
    fw = copy.deepcopy(yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["firewall"])
    for comment in comments:
        fw["rules"].append({"src": "受付PC", "dst": "PACS", "service": "DICOM", "comment": comment})
    return {"firewall": fw}


def _timed(ctl: Controller, common: dict, serial: int) -> float:
    inv = ctl.inventory(common, mamori_serial=serial)
    t0 = time.monotonic()
    recap, out = ctl.play(inv, "--forks", str(BOXES))
    took = time.monotonic() - t0
    if recap != {c.clinic_id: (1, 0) for c in ctl.fleet.clinics}:
        raise RuntimeError(f"the change did not land on every box:\n{out}")
    return took


def projection(b1: float, c: float, boxes: int, serial: int) -> float:
    return math.ceil(boxes / serial) * (b1 + (serial - 1) * c)


def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-ansible-") as tmp:
        fleet = Fleet(f"ba{os.getpid()}", Path(tmp) / "fleet", count=BOXES, ids_boxes=frozenset())
        with fleet:
            ctl = Controller(fleet, Path(tmp) / "controller").setup()
            batch = _timed(ctl, _change("bench 1"), serial=BOXES)
            one_by_one = _timed(ctl, _change("bench 1", "bench 2"), serial=1)
    b1 = one_by_one / BOXES
    c = max(0.0, (batch - b1) / (BOXES - 1))
    rows = [
        (f"roll one change to {BOXES} lab boxes, one batch (measured)", f"{batch:.1f} s", "≤ 60 s"),
        (f"one-box batch b1 (measured: serial 1 over {BOXES} boxes)", f"{b1:.1f} s", "for information"),
        ("marginal cost of one more box in a batch c (measured)", f"{c:.1f} s", "for information"),
    ]
    for boxes, serial in ((10, 5), (10, 10), (100, 10), (100, 25)):
        rows.append((f"PROJECTION {boxes} boxes, serial {serial}, forks {serial} (computed)",
                     f"{projection(b1, c, boxes, serial):.0f} s", "projection, not measured"))  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print("  ".join(row))
