"""The Raspberry Pi disk layout and its tryboot files, made in a small sparse file by the same scripts the
image build uses (scripts/image-rpi-layout.sh, image/rootfs/usr/lib/mamori/rpi-boot-files) and read back
with sfdisk and mtools; and the installer's tryboot handling (mark good = swap autoboot.txt). The real
arm64 image is checked by tests/image/test_image_arm64.py when it was built; the Pi itself cannot boot in
qemu here."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "mamori_update_rpi", REPO / "image/rootfs/usr/lib/mamori/mamori_update.py"
)
assert _spec and _spec.loader
mu = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = mu  # dataclasses look their module up
_spec.loader.exec_module(mu)
LAYOUT = REPO / "scripts/image-rpi-layout.sh"
BOOT_FILES = REPO / "image/rootfs/usr/lib/mamori/rpi-boot-files"
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mtype", "mdir", "mkfs.ext4", "dumpe2fs", "python3")

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS), reason="sfdisk, dosfstools, mtools and e2fsprogs are needed"
)


def fake_root(base: Path) -> Path:
    """The parts of an arm64 root file system that rpi-boot-files reads."""
    root = base / "root"
    kver = "6.1.0-99-arm64"
    for d in ("boot", "usr/lib/raspi-firmware", f"usr/lib/linux-image-{kver}/broadcom", "usr/lib/mamori"):
        (root / d).mkdir(parents=True)
    (root / f"boot/vmlinuz-{kver}").write_bytes(b"kernel")
    (root / f"boot/initrd.img-{kver}").write_bytes(b"initrd")
    (root / "boot/vmlinuz-6.1.0-9-arm64").write_bytes(b"older kernel")
    for fw in ("start4.elf", "fixup4.dat", "bootcode.bin"):
        (root / "usr/lib/raspi-firmware" / fw).write_bytes(fw.encode())
    (root / f"usr/lib/linux-image-{kver}/broadcom/bcm2711-rpi-4-b.dtb").write_bytes(b"dtb")
    shutil.copy(REPO / "image/rootfs/usr/lib/mamori/rpi-config.txt", root / "usr/lib/mamori/rpi-config.txt")
    return root


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("rpi")
    root = fake_root(tmp)
    boot = tmp / "boot-a"
    boot.mkdir()
    subprocess.run([str(BOOT_FILES), str(root), str(boot), "6d616d6f-05"], check=True, timeout=60)
    rootimg = tmp / "root.img"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "mamori-root-a", str(rootimg), "8M"], check=True, timeout=60
    )
    out = tmp / "rpi.img"
    subprocess.run(
        ["bash", str(LAYOUT), str(out), "--boot-a", str(boot), "--root-a", str(rootimg), "--control-mib", "16",
         "--boot-mib", "64", "--root-mib", "16", "--data-mib", "16"],
        check=True, timeout=120,
    )  # fmt: skip
    return out


def partitions(image: Path) -> dict[int, dict]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True, timeout=30).stdout)["partitiontable"]  # fmt: skip
    assert table["label"] == "dos" and table["id"] == "0x6d616d6f"
    return {int(p["node"].rsplit(str(image), 1)[1]): p for p in table["partitions"]}


def fat(image: Path, part: dict, tmp: Path, name: str) -> str:
    dest = tmp / f"{name}.fat"
    subprocess.run(["dd", f"if={image}", f"of={dest}", "bs=512", f"skip={part['start']}", f"count={part['size']}",
                    "conv=sparse", "status=none"], check=True, timeout=60)  # fmt: skip
    return str(dest)


def mtype(fs: str, path: str) -> str:
    return subprocess.run(["mtype", "-i", fs, f"::/{path}"], capture_output=True, text=True, check=True,
                          timeout=30, env=MTOOLS).stdout  # fmt: skip


def test_partition_table_has_two_boot_and_two_root_slots(disk: Path) -> None:
    parts = partitions(disk)
    assert sorted(parts) == [1, 2, 3, 4, 5, 6, 7]
    assert parts[1]["type"] == "e" and parts[1].get("bootable")  # FAT16 (LBA): autoboot.txt
    assert parts[2]["type"] == parts[3]["type"] == "c"  # FAT32 (LBA): boot slots A and B, primary (1-4)
    assert parts[4]["type"] == "5"
    assert parts[5]["type"] == parts[6]["type"] == parts[7]["type"] == "83"
    assert parts[2]["size"] == parts[3]["size"] and parts[5]["size"] == parts[6]["size"]
    starts = [parts[n]["start"] for n in (1, 2, 3, 5, 6, 7)]
    assert starts == sorted(starts) and all(s % 2048 == 0 for s in starts), "in order, MiB-aligned"
    for n in (5, 6, 7):
        assert parts[4]["start"] < parts[n]["start"] < parts[4]["start"] + parts[4]["size"]


def test_autoboot_txt_boots_a_and_tries_b(disk: Path, tmp_path: Path) -> None:
    ctl = fat(disk, partitions(disk)[1], tmp_path, "ctl")
    text = mtype(ctl, "autoboot.txt")
    assert text == mu.autoboot_text(2, 3)
    assert "tryboot_a_b=1" in text and mu.parse_autoboot(text) == {"all": 2, "tryboot": 3}


def test_boot_slot_a_mounts_root_a_read_only(disk: Path, tmp_path: Path) -> None:
    boot = fat(disk, partitions(disk)[2], tmp_path, "boot-a")
    listing = subprocess.run(["mdir", "-b", "-i", boot, "::/"], capture_output=True, text=True, check=True,
                             env=MTOOLS, timeout=30).stdout  # fmt: skip
    names = {line.rsplit("/", 1)[-1] for line in listing.split()}
    assert {"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img", "config.txt"} <= names
    assert mtype(boot, "vmlinuz") == "kernel", "the newest kernel of the root"
    cmdline = mtype(boot, "cmdline.txt").split()
    assert "root=PARTUUID=6d616d6f-05" in cmdline and "ro" in cmdline and "rw" not in cmdline
    config = mtype(boot, "config.txt")
    assert "kernel=vmlinuz" in config and "arm_64bit=1" in config


def test_boot_slot_b_is_empty_fat_and_data_is_ext4(disk: Path, tmp_path: Path) -> None:
    parts = partitions(disk)
    boot_b = fat(disk, parts[3], tmp_path, "boot-b")
    listing = subprocess.run(["mdir", "-b", "-i", boot_b, "::/"], capture_output=True, text=True, env=MTOOLS,
                             timeout=30).stdout  # fmt: skip
    assert listing.strip() == "", "slot B gets its files from the first update"
    data = tmp_path / "data.img"
    subprocess.run(["dd", f"if={disk}", f"of={data}", "bs=512", f"skip={parts[7]['start']}",
                    f"count={parts[7]['size']}", "status=none"], check=True, timeout=60)  # fmt: skip
    info = subprocess.run(["dumpe2fs", "-h", str(data)], capture_output=True, text=True, timeout=30).stdout
    assert "Filesystem volume name:   mamori-data" in info


def test_boot_files_carry_the_machine_id_option(tmp_path: Path) -> None:
    dest = tmp_path / "boot"
    dest.mkdir()
    subprocess.run([str(BOOT_FILES), str(fake_root(tmp_path)), str(dest), "6d616d6f-06",
                    "systemd.machine_id=" + "ab" * 16], check=True, timeout=60)  # fmt: skip
    cmdline = (dest / "cmdline.txt").read_text().split()
    assert "root=PARTUUID=6d616d6f-06" in cmdline and "systemd.machine_id=" + "ab" * 16 in cmdline


class FakePi(mu.RaspberryPi):
    """The Pi platform over directories: each partition is a directory, "mounting" it yields that directory."""

    def _part(self, number: int) -> Path:
        path = self.partuuids / f"p{number}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def _mounted(self, device: Path, name: str, *options: str) -> Iterator[Path]:
        yield device


def _dt(path: Path, **values: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (path / name).write_bytes(value.to_bytes(4, "big"))


@pytest.fixture
def pi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePi:
    version = tmp_path / "IMAGE_VERSION"
    version.write_text("2026.12.2\n")
    monkeypatch.setattr(mu, "VERSION_FILE", version)
    (tmp_path / "cmdline").write_text("coherent_pool=1M root=PARTUUID=6d616d6f-06 ro\n")
    plat = FakePi(partuuids=tmp_path / "parts", cmdline=tmp_path / "cmdline", bootloader=tmp_path / "dt",
                  mounts=tmp_path / "mnt", state=tmp_path / "state")  # fmt: skip
    plat.state.mkdir()
    (plat._part(1) / "autoboot.txt").write_text(mu.autoboot_text(2, 3))
    return plat


def test_healthy_tryboot_of_slot_b_becomes_the_default(pi: FakePi) -> None:
    _dt(pi.bootloader, tryboot=1, partition=3)
    assert pi.running_slot() == "b"
    assert pi.mark_good()
    assert mu.parse_autoboot((pi._part(1) / "autoboot.txt").read_text()) == {"all": 3, "tryboot": 2}
    assert pi.slots()["b"]["state"] == "good"


def test_ordinary_boot_changes_nothing(pi: FakePi) -> None:
    """Booted normally (the trial failed and the firmware went back, or no update): autoboot.txt stays."""
    _dt(pi.bootloader, tryboot=0, partition=2)
    pi.cmdline.write_text("root=PARTUUID=6d616d6f-05 ro\n")
    assert not pi.mark_good()
    assert (pi._part(1) / "autoboot.txt").read_text() == mu.autoboot_text(2, 3)


def test_forget_keeps_the_running_partition_as_default(pi: FakePi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before slot A is written while B runs, autoboot.txt must say: boot B, try A (never the other way)."""
    wiped: list[tuple[str, ...]] = []
    monkeypatch.setattr(mu, "_sh", lambda *argv, **_: wiped.append(argv) or "")
    pi.cmdline.write_text("root=PARTUUID=6d616d6f-06 ro\n")
    pi.forget("a")
    assert mu.parse_autoboot((pi._part(1) / "autoboot.txt").read_text()) == {"all": 3, "tryboot": 2}
    assert wiped and wiped[0][:2] == ("wipefs", "-a") and wiped[0][-1].endswith("p2")
    assert pi.reboot_argv()[-1] == "0 tryboot"
