"""The real daemon's clock stepped forward and back while it runs (issue: keeps working as the calendar turns).

Only the box's `mamori` processes (daemon and CLI) see the stepped clock: they run under tests/clockshift.py, which
moves their wall clock by an offset the test rewrites; monotonic time stays real, as on a box whose wall clock NTP
steps. The machine's own clock is never touched.

What must hold: a block keeps the time it had left (checked where it matters, in the kernel's set after the daemon
restarts and re-seeds it from its records), a maintenance window the box closed is not re-opened by a step back,
and each step is in the audit log and in `mamori time status` in Japanese.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.topology import Lab
from tests.integration.test_firewall_helpers import wait_until

pytestmark = pytest.mark.integration

HOUR = 3600
ATTACKER = "203.0.113.66"


class SteppedClock:
    """A wall-clock offset for the box's `mamori` processes; `step()` moves it while they run."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{self.offset:+d}\n", encoding="ascii")
        tmp.replace(self.path)  # the reader never sees half a line

    def step(self, seconds: int) -> None:
        self.offset += seconds
        self._write()

    def entry(self) -> tuple[str, ...]:
        return (sys.executable, "-m", "tests.clockshift", str(self.path))


def _block_left(box: Box) -> float | None:
    """Seconds the kernel's blocked4 set still holds ATTACKER (None: not in the set)."""
    out = box.lab.run("box", ["nft", "-j", "list", "set", "inet", "mamori", "blocked4"]).stdout
    for obj in json.loads(out)["nftables"]:
        for elem in obj.get("set", {}).get("elem", []):
            if isinstance(elem, dict) and elem.get("elem", {}).get("val") == ATTACKER:
                return float(elem["elem"].get("expires", 0))
    return None


def _steps(box: Box) -> int:
    return box.mamori("audit", "list", "--search", "clock.step").stdout.count("clock.step")


def _window_state(box: Box) -> str:
    line = box.mamori("vpn", "windows").stdout.splitlines()[0]
    return line.split()[7]  # id, user, date, time, -, date, time, state


def _reboot(box: Box) -> None:
    """What a reboot does to the firewall: the kernel forgets the table; the daemon rebuilds it and re-seeds the
    blocks from its records (their wall-time expiry), which is where a step would have cut them short."""
    box.stop_daemon()
    box.lab.run("box", ["nft", "delete", "table", "inet", "mamori"])
    box.start_daemon()


def test_steps_forward_and_back_keep_blocks_and_never_reopen_a_window(lab: Lab, tmp_path: Path) -> None:
    clock = SteppedClock(tmp_path / "faketime")
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["ids"]["enabled"] = False  # not what this test is about; spares the 2 cores
    box = make_box(lab, tmp_path / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    box.entry = clock.entry()
    box.mamori("config", "apply", "-m", "初期設定")
    box.start_daemon()
    try:
        box.mamori("fw", "block", ATTACKER, "--for", "3h", "--reason", "テスト")
        box.mamori("vpn", "windows", "--approve", "vendor-a", "--hours", "0.5", "--reason", "電子カルテ更新",
                   "--target", "電子カルテ")  # fmt: skip
        assert _window_state(box) == "承認中"

        clock.step(2 * HOUR)  # NTP steps a late clock forward: the window is over, the block is not
        assert wait_until(lambda: _steps(box) == 1, timeout=20) is not None
        assert wait_until(lambda: _window_state(box) == "終了", timeout=10) is not None
        status = box.mamori("time", "status", check=False).stdout
        assert "時計が 2 時間 進みました" in status, status
        _reboot(box)  # the sets are re-seeded from the records: the block kept its 3 hours
        left = _block_left(box)
        assert left is not None and 2.5 * HOUR < left <= 3 * HOUR, left

        clock.step(-2 * HOUR)  # a bad source steps it back into the window's time
        assert wait_until(lambda: _steps(box) == 2, timeout=20) is not None
        assert _window_state(box) == "終了"  # closed stays closed
        assert "時計が 2 時間 戻りました" in box.mamori("time", "status", check=False).stdout
        _reboot(box)
        left = _block_left(box)
        assert left is not None and 2.5 * HOUR < left <= 3 * HOUR, left
        box.mamori("audit", "verify")  # exit 0: the chain holds across the steps
    finally:
        box.stop_daemon()
    log = (box.state_dir / "daemon.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "wall clock stepped by +7200 s" in log and "wall clock stepped by -7200 s" in log
