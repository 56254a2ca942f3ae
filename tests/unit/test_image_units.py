"""The systemd units pass `systemd-analyze verify` (this machine does not boot systemd, but can check them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTFS = REPO / "image" / "rootfs"
UNITS = sorted((REPO / "image" / "systemd").glob("*.service")) + sorted(
    (ROOTFS / "usr/lib/systemd/system").glob("*.service")
)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_verify(tmp_path: Path) -> None:
    assert UNITS, "no unit files found"
    mamori = Path(sys.executable).parent / "mamori"
    assert mamori.exists()
    for unit in UNITS:
        text = unit.read_text()
        # The units name installed paths; point them at this checkout so verify can check the binaries.
        text = text.replace("/usr/bin/mamori", str(mamori))
        text = text.replace("/usr/lib/mamori/fail-closed.nft", str(REPO / "image/nftables/fail-closed.nft"))
        text = text.replace("/usr/lib/mamori/", str(ROOTFS / "usr/lib/mamori") + "/")
        (tmp_path / unit.name).write_text(text)
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[str(tmp_path / u.name) for u in UNITS]],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    ours = [line for line in (res.stdout + res.stderr).splitlines() if any(u.name in line for u in UNITS)]
    assert res.returncode == 0 and not ours, res.stdout + res.stderr


def test_daemon_unit_is_notify_and_restarts() -> None:
    text = (REPO / "image/systemd/mamori.service").read_text()
    assert "Type=notify" in text and "Restart=on-failure" in text and "WatchdogSec=" in text
    assert "\nUMask=0077\n" in text  # the state database, keys and backups are never readable by others
    boot = (REPO / "image/systemd/mamori-fail-closed.service").read_text()
    assert "Before=network-pre.target" in boot and "DefaultDependencies=no" in boot


def test_boot_policy_file_is_the_firewalls_fail_closed_policy() -> None:
    from firewall.failclosed import FAIL_CLOSED_NFT

    assert (REPO / "image/nftables/fail-closed.nft").read_text() == FAIL_CLOSED_NFT
