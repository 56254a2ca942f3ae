"""The arm64 (Raspberry Pi) image: its root file system under qemu-user (Mamori's CLI runs with the image's
own arm64 Python, validates the example configuration and refuses a broken one in Japanese), and the disk
out/mamori-arm64.img itself: the MBR with the control partition, boot A/B, root A/B and data, autoboot.txt
with tryboot_a_b, the boot files of slot A, the read-only root A, and the whole tryboot cycle of
mamori-update on the image's own partitions (tests/unit/test_image_rpi_layout.py, run here on the real
disk). The Pi cannot boot in qemu here.

Runs when `scripts/image-build.sh arm64` has finished (out/mamori-arm64.img and out/build/arm64/rootfs);
skipped otherwise, unless MAMORI_IMAGE_ARM64=required (CI).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import OUT

ROOTFS = OUT / "build/arm64/rootfs"
IMAGE = OUT / "mamori-arm64.img"
BUNDLE = OUT / "mamori-arm64-update.tar"
ENV = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"]

# The build writes the image after the root file system and the bundle are complete (and removes an old
# image first), so a build still running is "not built". CI builds it and sets MAMORI_IMAGE_ARM64=required:
# there a missing image fails instead of skipping.
BUILT = IMAGE.exists() and (ROOTFS / "usr/lib/mamori/venv/bin/mamori").exists()
REQUIRED = os.environ.get("MAMORI_IMAGE_ARM64") == "required"
pytestmark = pytest.mark.skipif(not (BUILT or REQUIRED), reason="arm64 image not built")


def test_image_was_built() -> None:
    assert BUILT, (
        f"{IMAGE} or its root file system {ROOTFS} is missing: scripts/image-build.sh arm64 did not finish"
    )


def in_root(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(ROOTFS), *ENV, *argv], input=stdin, capture_output=True, text=True, timeout=600
    )


def test_rootfs_is_arm64() -> None:
    res = in_root("/usr/bin/python3", "-c", "import platform; print(platform.machine())")
    assert res.returncode == 0 and res.stdout.strip() == "aarch64", res.stderr


def test_cli_validates_the_example_config() -> None:
    res = in_root(
        "/usr/bin/mamori",
        "--lang",
        "en",
        "config",
        "validate",
        "--file",
        "/usr/share/mamori/examples/clinic.yaml",
    )
    assert res.returncode == 0 and "valid" in res.stdout, res.stdout + res.stderr


def test_cli_refuses_a_broken_config_in_japanese() -> None:
    broken = (
        (Path(__file__).resolve().parents[2] / "examples/clinic.yaml")
        .read_text()
        .replace("zone: lan", "zone: lann", 1)
    )
    res = in_root("/usr/bin/mamori", "config", "validate", "--file", "-", stdin=broken)
    assert res.returncode != 0
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in res.stdout + res.stderr), (
        res.stderr
    )


def test_native_extensions_load() -> None:
    res = in_root(
        "/usr/lib/mamori/venv/bin/python",
        "-c",
        "import nftables, pydantic_core, cryptography.hazmat.bindings._rust, argon2, yaml; print('ok')",
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# The disk image itself: the tests of tests/unit/test_image_rpi_layout.py (imported below, so pytest runs
# them here too) with their `disk` fixture replaced by the real image, then what only the real image has.
_spec = importlib.util.spec_from_file_location(
    "rpi_layout_tests", Path(__file__).resolve().parents[1] / "unit/test_image_rpi_layout.py"
)
assert _spec and _spec.loader
layout = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = layout  # for the import below and its dataclasses
_spec.loader.exec_module(layout)
from rpi_layout_tests import (  # noqa: E402, F401  (collected by pytest with this module's `disk`)
    pi,
    test_autoboot_txt_boots_a_and_tries_b,
    test_boot_slot_a_mounts_root_a_read_only,
    test_boot_slot_b_is_empty_fat_root_b_empty_and_data_is_ext4,
    test_failed_trial_falls_back_without_a_write,
    test_forget_keeps_the_running_partition_as_default,
    test_ordinary_boot_changes_nothing,
    test_partition_table_has_two_boot_and_two_root_slots,
    test_update_is_tried_once_and_becomes_the_default_when_healthy,
)

MIB = 2048  # sectors


@pytest.fixture(scope="module")
def disk() -> object:
    # The bundle of this same build stands in for the next version: the box "runs" an older one.
    return layout.Disk(IMAGE, ROOTFS, BUNDLE, ROOTFS / "usr/share/mamori/update-keys", version="0.0.1")


def _manifest() -> dict[str, str]:
    with tarfile.open(BUNDLE) as tar:
        text = tar.extractfile("manifest").read().decode()  # type: ignore[union-attr]
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line and len(line.split()[0]) < 20)


def test_slot_sizes_are_the_builds() -> None:
    """The sizes scripts/image-lib.sh gives: an update's root (root-size) fits slot B exactly as slot A."""
    parts = layout.partitions(IMAGE)
    sizes = {n: p["size"] // MIB for n, p in parts.items() if n != 4}
    assert sizes == {1: 16, 2: 256, 3: 256, 5: 1024, 6: 1024, 7: 512}
    assert int(_manifest()["root-size"]) == parts[6]["size"] * 512


def test_bundle_is_root_a_for_arm64() -> None:
    """The update bundle made with the image carries exactly root A (its signed hash read off the disk)."""
    manifest = _manifest()
    assert manifest["arch"] == "arm64"
    assert manifest["version"] == (ROOTFS / "usr/share/mamori/IMAGE_VERSION").read_text().strip()
    p5 = layout.partitions(IMAGE)[5]
    h = hashlib.sha256()
    with open(IMAGE, "rb") as f:
        f.seek(p5["start"] * 512)
        left = int(manifest["root-size"])
        while left > 0:
            chunk = f.read(min(left, 1 << 22))
            h.update(chunk)
            left -= len(chunk)
    assert h.hexdigest() == manifest["root-sha256"]


def _debugfs(img: Path, command: str) -> str:
    return subprocess.run(["debugfs", "-R", command, str(img)], capture_output=True, text=True, check=True,
                          timeout=60).stdout  # fmt: skip


def test_root_a_is_read_only_with_state_on_the_data_partition(tmp_path: Path) -> None:
    root = layout.extract(IMAGE, layout.partitions(IMAGE)[5], tmp_path / "root-a.img")
    fstab = [
        line.split() for line in _debugfs(root, "cat /etc/fstab").splitlines() if line.split()[:1] != ["#"]
    ]
    fstab = [f for f in fstab if f]
    assert not [f for f in fstab if f[1] == "/"], "no / line: the root stays as the kernel mounts it (ro)"
    mounts = {f[1]: f for f in fstab}
    assert mounts["/var/lib/mamori"][0] == "PARTUUID=6d616d6f-07" and mounts["/var/lib/mamori"][2] == "ext4"
    for path in ("/var/log", "/var/lib/systemd", "/etc/mamori"):
        assert "bind" in mounts[path][3] and mounts[path][0].startswith("/var/lib/mamori/"), path
    assert mounts["/tmp"][2] == "tmpfs"
    ls = _debugfs(root, "ls -l /usr/lib/mamori")
    assert "rpi-boot-files" in ls and "mamori_update.py" in ls
    assert _debugfs(root, "cat /usr/share/mamori/update-keys/vendor.pem").startswith(
        "-----BEGIN PUBLIC KEY-----"
    )


def _cpio_members(archive: bytes) -> dict[str, bytes]:
    """The files of a newc cpio archive (what mkinitramfs writes), by path."""
    members: dict[str, bytes] = {}
    at = 0
    while True:
        header = archive[at : at + 110]
        assert header[:6] in (b"070701", b"070702"), f"no cpio header at {at}"
        name_size, size = int(header[94:102], 16), int(header[54:62], 16)
        name = archive[at + 110 : at + 110 + name_size - 1].decode()
        at = (at + 110 + name_size + 3) & ~3
        if name == "TRAILER!!!":
            return members
        members[name] = archive[at : at + size]
        at = (at + size + 3) & ~3


def test_initramfs_is_arm64_and_can_mount_the_root(tmp_path: Path) -> None:
    """The initramfs of boot slot A holds only arm64 programs (the build runs some of the host's own tools
    while it makes it, scripts/image-customize.sh) and the drivers to find root A on an SD card or a USB disk."""
    boot = layout.fat(IMAGE, layout.partitions(IMAGE)[2], tmp_path, "boot-a")
    packed = layout.fat_bytes(boot, "initrd.img")
    archive = subprocess.run(
        ["zstd", "-dc"], input=packed, capture_output=True, check=True, timeout=120
    ).stdout
    members = _cpio_members(archive)
    elves = {name: data[18:20] for name, data in members.items() if data[:4] == b"\x7fELF"}
    assert len(elves) > 100, "the programs and modules of the initramfs"
    aarch64 = (183).to_bytes(2, "little")  # e_machine EM_AARCH64
    assert {name for name, machine in elves.items() if machine != aarch64} == set()
    assert not {"lib64", "usr/lib64"} & members.keys(), "no trace of the build host's layout"
    modules = {name.rsplit("/", 1)[-1] for name in members if name.endswith(".ko")}
    assert {"sdhci-iproc.ko", "ext4.ko", "usb-storage.ko", "uas.ko", "sd_mod.ko", "xhci-pci.ko"} <= modules
    assert members["init"].startswith(b"#!/bin/sh"), "initramfs-tools' init"
