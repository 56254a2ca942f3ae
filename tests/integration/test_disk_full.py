"""A full state disk on a running box (a small tmpfs under the state directory, filled by the test): the firewall
keeps enforcing, the daemon keeps running and says so in Japanese, a config change is refused whole, and the box
recovers by itself when there is room again, with an intact database."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.topology import Lab
from tests.integration.test_firewall_helpers import tcp_ok, wait_until

pytestmark = pytest.mark.integration

EHR, EHR_PORT = "192.168.10.10", 8443


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB file system of its own for the state directory, unmounted afterwards."""
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write zeros until the file system refuses (bounded by its size)."""
    filler = disk / "filler"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"], capture_output=True, check=False
    )
    return filler


def _revisions(box: Box) -> int:
    with sqlite3.connect(f"file:{box.state_dir / 'db' / 'mamori.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) FROM revisions").fetchone()[0]


def _ruleset(box: Box) -> str:
    """The kernel's ruleset without counters and timers (-s): what a config change would alter."""
    return box.lab.run("box", ["nft", "-s", "list", "table", "inet", "mamori"]).stdout


def test_a_full_disk_stops_the_records_never_the_firewall(lab: Lab, small_disk: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["ids"]["enabled"] = False  # not what this test is about; spares the 2 cores
    box = make_box(lab, small_disk, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    box.log_path = tmp_path / "daemon.log"  # the log lives elsewhere on a real box too (the journal)
    box.mamori("config", "apply", "-m", "初期設定")
    listener = lab.listen_tcp("emr", EHR_PORT)
    box.start_daemon()
    try:
        assert tcp_ok(lab, "reception", EHR, EHR_PORT) and not tcp_ok(
            lab, "phone", EHR, EHR_PORT, timeout=0.7
        )
        assert box.mamori("status").returncode == 0
        filler = _fill(small_disk)

        status = box.mamori("status", check=False)
        assert status.returncode == 1 and "記録用のディスクがいっぱいです" in status.stdout, status.stdout
        assert (
            wait_until(lambda: "the state disk is full" in box.log_path.read_text(), timeout=20) is not None
        )
        # The kernel keeps the policy: the reception PC still reaches the EHR, the guest phone still does not.
        for _ in range(3):
            assert tcp_ok(lab, "reception", EHR, EHR_PORT)
            assert not tcp_ok(lab, "phone", EHR, EHR_PORT, timeout=0.7)
        # A change is refused whole: no revision, no new rule in the kernel.
        before, ruleset = _revisions(box), _ruleset(box)
        data["firewall"]["rules"].append({"src": "受付PC", "dst": "PACS", "service": "DICOM"})
        candidate = tmp_path / "candidate.yaml"
        candidate.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        refused = box.mamori("config", "apply", "--file", str(candidate), "-m", "ルール追加", check=False)
        assert refused.returncode != 0 and "ディスクがいっぱい" in refused.stderr + refused.stdout
        assert _revisions(box) == before and _ruleset(box) == ruleset
        assert box.daemon is not None and box.daemon.poll() is None

        filler.unlink()  # room again: everything carries on by itself
        assert wait_until(lambda: box.mamori("status", check=False).returncode == 0, timeout=20) is not None
        assert wait_until(lambda: "the state disk has room again" in box.log_path.read_text(), timeout=20)
        assert not tcp_ok(lab, "phone", EHR, EHR_PORT, timeout=0.7)  # a fresh drop after the disk was full
        assert wait_until(lambda: "guest>lan" in box.mamori("fw", "drops").stdout, timeout=15) is not None
        box.mamori("config", "apply", "--file", str(candidate), "-m", "ルール追加")
        assert _revisions(box) == before + 1
        with sqlite3.connect(box.state_dir / "db" / "mamori.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        box.mamori("audit", "verify")
        assert box.daemon.poll() is None
    finally:
        box.stop_daemon()
        lab.stop(listener)
