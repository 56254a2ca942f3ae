"""The arm64 (Raspberry Pi) root file system under qemu-user: Mamori's CLI runs with the image's own arm64
Python and validates the example configuration; a broken configuration is refused with a Japanese message.

Runs when `make image` (IMAGE_ARCHES containing arm64) left out/build/arm64/rootfs; skipped otherwise.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import OUT

ROOTFS = OUT / "build/arm64/rootfs"
ENV = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"]

pytestmark = pytest.mark.skipif(
    not (ROOTFS / "usr/lib/mamori/venv/bin/mamori").exists(), reason="arm64 root file system not built"
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


# The disk image itself (out/mamori-arm64.img): A/B with the firmware's tryboot. The same checks as
# tests/unit/test_image_rpi_layout.py, on the real image; the Pi cannot be booted in qemu here.
IMAGE = OUT / "mamori-arm64.img"
MTOOLS = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
needs_image = pytest.mark.skipif(not IMAGE.exists(), reason="arm64 image not built")


def _table() -> dict[int, dict]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(IMAGE)], capture_output=True, text=True,
                                      check=True, timeout=30).stdout)["partitiontable"]  # fmt: skip
    assert table["label"] == "dos" and table["id"] == "0x6d616d6f"
    return {int(p["node"].rsplit(str(IMAGE), 1)[1]): p for p in table["partitions"]}


def _part(number: int, dest: Path) -> str:
    p = _table()[number]
    subprocess.run(["dd", f"if={IMAGE}", f"of={dest}", "bs=512", f"skip={p['start']}", f"count={p['size']}",
                    "conv=sparse", "status=none"], check=True, timeout=300)  # fmt: skip
    return str(dest)


def _mtype(fs: str, path: str) -> str:
    return subprocess.run(["mtype", "-i", fs, f"::/{path}"], capture_output=True, text=True, check=True,
                          env=MTOOLS, timeout=30).stdout  # fmt: skip


@needs_image
def test_arm64_image_has_ab_slots_and_tryboot(tmp_path: Path) -> None:
    parts = _table()
    assert sorted(parts) == [1, 2, 3, 4, 5, 6, 7]
    assert parts[2]["size"] == parts[3]["size"] and parts[5]["size"] == parts[6]["size"]
    autoboot = _mtype(_part(1, tmp_path / "ctl.fat"), "autoboot.txt")
    assert autoboot == "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
    boot = _part(2, tmp_path / "boot-a.fat")
    cmdline = _mtype(boot, "cmdline.txt").split()
    assert "root=PARTUUID=6d616d6f-05" in cmdline and "ro" in cmdline
    listing = subprocess.run(["mdir", "-b", "-i", boot, "::/"], capture_output=True, text=True, env=MTOOLS,
                             timeout=30).stdout  # fmt: skip
    for name in ("start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img", "config.txt"):
        assert f"/{name}" in listing, name
    root = _part(5, tmp_path / "root-a.img")
    ls = subprocess.run(["debugfs", "-R", "ls -l /usr/lib/mamori", root], capture_output=True, text=True,
                        timeout=60).stdout  # fmt: skip
    assert "rpi-boot-files" in ls and "mamori_update.py" in ls
    fstab = subprocess.run(["debugfs", "-R", "cat /etc/fstab", root], capture_output=True, text=True,
                           timeout=60).stdout  # fmt: skip
    assert "PARTUUID=6d616d6f-07  /var/lib/mamori" in fstab


@needs_image
def test_arm64_update_bundle_is_for_arm64() -> None:
    with tarfile.open(OUT / "mamori-arm64-update.tar") as tar:
        manifest = tar.extractfile("manifest").read().decode()  # type: ignore[union-attr]
    assert "\narch arm64\n" in manifest
