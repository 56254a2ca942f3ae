"""The systemd units pass `systemd-analyze verify` (this machine does not boot systemd, but can check them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTFS = REPO / "image" / "rootfs"
UNITS = (
    sorted((REPO / "image" / "systemd").glob("*.service"))
    + sorted((ROOTFS / "usr/lib/systemd/system").glob("*.service"))
    + sorted((ROOTFS / "usr/lib/systemd/system").glob("*.path"))
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
        text = text.replace("/usr/sbin/mamori-update", str(ROOTFS / "usr/sbin/mamori-update"))
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


def _directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_update_install_unit_is_root_but_fenced() -> None:
    """The root side of updates writes the spare slot and the ESP, nothing else; it has no network and only
    block devices from the device list (issue 13.2)."""
    unit = ROOTFS / "usr/lib/systemd/system/mamori-update-install.service"
    d = _directives(unit)
    assert d["ExecStart"] == ["/usr/sbin/mamori-update request"]
    assert (
        d["ProtectSystem"] == ["strict"]
        and d["PrivateNetwork"] == ["yes"]
        and d["NoNewPrivileges"] == ["yes"]
    )
    assert d["ReadWritePaths"] == ["/var/lib/mamori/update"]  # the ESP is mounted inside its own namespace
    assert d["DevicePolicy"] == ["closed"] and all(v.startswith("block-") for v in d["DeviceAllow"])
    assert d["RestrictAddressFamilies"] == ["AF_UNIX"]
    path = _directives(ROOTFS / "usr/lib/systemd/system/mamori-update-install.path")
    assert path["PathExists"] == ["/var/lib/mamori/update/request.json"]
    assert path["Unit"] == ["mamori-update-install.service"]


def test_daemon_cannot_write_the_system_or_its_devices() -> None:
    """The daemon asks for updates through its state directory; it never gets the ESP or a block device."""
    d = _directives(REPO / "image/systemd/mamori.service")
    assert d["ProtectSystem"] == ["strict"]
    writable = " ".join(d["ReadWritePaths"]).split()
    assert "/efi" not in writable and not any(p.lstrip("-").startswith("/dev") for p in writable)
    assert d["DevicePolicy"] == ["closed"] and d["DeviceAllow"] == ["/dev/net/tun rw"]
