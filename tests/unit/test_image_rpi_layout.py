"""The Raspberry Pi disk layout and its tryboot files, made in a small sparse file by the same scripts the
image build uses (scripts/image-rpi-layout.sh, image/rootfs/usr/lib/mamori/rpi-boot-files) and read back
with sfdisk and mtools; and the installer's tryboot handling (write slot B, fill boot partition B, mark
good = swap autoboot.txt) on that disk's own partitions. tests/image/test_image_arm64.py runs the same
tests (the `disk` fixture replaced) on the real out/mamori-arm64.img when it was built; the Pi itself
cannot boot in qemu here."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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
BUNDLE_SH = REPO / "scripts/image-bundle.sh"
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
TOOLS = (
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mtype",
    "mdir",
    "mkfs.ext4",
    "dumpe2fs",
    "debugfs",
    "wipefs",
    "python3",
)
DISK_ID = "6d616d6f"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS), reason="sfdisk, dosfstools, mtools and e2fsprogs are needed"
)


@dataclass
class Disk:
    """A Pi disk image and what its slot A was made from."""

    path: Path
    root: Path  # the root tree of slot A (its newest kernel is on boot partition A)
    bundle: Path | None = None  # a signed update bundle of a newer version, for the same architecture
    keys: Path | None = None  # the directory of public keys that bundle verifies with
    version: str = ""  # the running version (slot A)


def fake_root(base: Path) -> Path:
    """The parts of an arm64 root file system that rpi-boot-files reads, and the script itself."""
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
    shutil.copy(BOOT_FILES, root / "usr/lib/mamori/rpi-boot-files")
    return root


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Disk:
    tmp = tmp_path_factory.mktemp("rpi")
    root = fake_root(tmp)
    boot = tmp / "boot-a"
    boot.mkdir()
    subprocess.run([str(BOOT_FILES), str(root), str(boot), f"{DISK_ID}-05"], check=True, timeout=60)
    rootimg = tmp / "root.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "mamori-root-a", "-d", str(root), str(rootimg), "8M"],
                   check=True, timeout=60)  # fmt: skip
    out = tmp / "rpi.img"
    subprocess.run(
        ["bash", str(LAYOUT), str(out), "--boot-a", str(boot), "--root-a", str(rootimg), "--control-mib", "16",
         "--boot-mib", "64", "--root-mib", "16", "--data-mib", "16"],
        check=True, timeout=120,
    )  # fmt: skip
    # Version 2 of the same root with a new kernel, signed with a key made here: what an update brings.
    root2 = tmp / "root2"
    shutil.copytree(root, root2)
    (root2 / "boot/vmlinuz-6.1.0-99-arm64").write_bytes(b"kernel v2")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "mamori-root", "-d", str(root2), str(tmp / "root2.img"), "8M"],
                   check=True, timeout=60)  # fmt: skip
    keys = tmp / "keys"
    keys.mkdir()
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(tmp / "key.pem")], check=True,
                   timeout=30)  # fmt: skip
    subprocess.run(["openssl", "pkey", "-in", str(tmp / "key.pem"), "-pubout", "-out", str(keys / "vendor.pem")],
                   check=True, timeout=30)  # fmt: skip
    bundle = tmp / "v2.tar"
    subprocess.run(
        ["bash", str(BUNDLE_SH), "--root", str(tmp / "root2.img"), "--kernel", str(root2 / "boot/vmlinuz-6.1.0-99-arm64"),
         "--initrd", str(root2 / "boot/initrd.img-6.1.0-99-arm64"), "--version", "2026.12.2", "--arch", "arm64",
         "--key", str(tmp / "key.pem"), "--out", str(bundle)],
        check=True, timeout=120,
    )  # fmt: skip
    return Disk(out, root, bundle, keys, "2026.12.1")


def partitions(image: Path) -> dict[int, dict]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True, timeout=30).stdout)["partitiontable"]  # fmt: skip
    assert table["label"] == "dos" and table["id"] == f"0x{DISK_ID}"
    return {int(p["node"].rsplit(str(image), 1)[1]): p for p in table["partitions"]}


def extract(image: Path, part: dict, dest: Path) -> Path:
    subprocess.run(["dd", f"if={image}", f"of={dest}", "bs=1M", f"skip={part['start'] * 512}",
                    f"count={part['size'] * 512}", "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"],
                   check=True, timeout=300)  # fmt: skip
    return dest


def fat(image: Path, part: dict, tmp: Path, name: str) -> str:
    return str(extract(image, part, tmp / f"{name}.fat"))


def mtype(fs: str, path: str) -> str:
    return subprocess.run(["mtype", "-i", fs, f"::/{path}"], capture_output=True, text=True, check=True,
                          timeout=30, env=MTOOLS).stdout  # fmt: skip


def fat_bytes(fs: str | Path, path: str) -> bytes:
    return subprocess.run(["mcopy", "-n", "-i", str(fs), f"::/{path}", "-"], capture_output=True, check=True,
                          timeout=60, env=MTOOLS).stdout  # fmt: skip


def fs_type(dev: str | Path) -> str:
    """The file system blkid finds on a partition file ("" when none)."""
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(dev)], capture_output=True, text=True,
                          timeout=30).stdout.strip()  # fmt: skip


def fat_files(fs: str | Path) -> set[str]:
    """Every file's path on a FAT file system (directories end in /)."""
    assert fs_type(fs) == "vfat", f"{fs} holds no FAT file system"
    top = subprocess.run(["mdir", "-b", "-i", str(fs), "::/"], capture_output=True, text=True, check=True,
                         env=MTOOLS, timeout=30).stdout  # fmt: skip
    if not top.strip():
        return set()  # (mdir -/ fails on an empty file system)
    out = subprocess.run(["mdir", "-b", "-/", "-i", str(fs), "::/"], capture_output=True, text=True, check=True,
                         env=MTOOLS, timeout=30).stdout  # fmt: skip
    return {line.removeprefix("::/") for line in out.split()}


def newest_kernel(root: Path) -> bytes:
    kernels = sorted(root.glob("boot/vmlinuz-*"), key=lambda p: [int(x) if x.isdigit() else -1
                                                                 for x in p.name.replace("-", ".").split(".")])  # fmt: skip
    return kernels[-1].read_bytes()


def test_partition_table_has_two_boot_and_two_root_slots(disk: Disk) -> None:
    parts = partitions(disk.path)
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
    ends = [parts[n]["start"] + parts[n]["size"] for n in (1, 2, 3, 5, 6, 7)]
    assert all(e <= s for e, s in zip(ends, starts[1:], strict=False)), "no overlap"


def test_autoboot_txt_boots_a_and_tries_b(disk: Disk, tmp_path: Path) -> None:
    ctl = fat(disk.path, partitions(disk.path)[1], tmp_path, "ctl")
    assert fat_files(ctl) == {"autoboot.txt"}, "the control partition holds autoboot.txt only"
    text = mtype(ctl, "autoboot.txt")
    assert (
        text
        == mu.autoboot_text(2, 3)
        == "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
    )
    assert mu.parse_autoboot(text) == {"all": 2, "tryboot": 3}


def test_boot_slot_a_mounts_root_a_read_only(disk: Disk, tmp_path: Path) -> None:
    boot = fat(disk.path, partitions(disk.path)[2], tmp_path, "boot-a")
    names = {name.rsplit("/", 1)[-1] for name in fat_files(boot)}
    assert {"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img", "config.txt"} <= names
    assert fat_bytes(boot, "vmlinuz") == newest_kernel(disk.root), "the newest kernel of root A"
    cmdline = mtype(boot, "cmdline.txt").split()
    assert f"root=PARTUUID={DISK_ID}-05" in cmdline and "ro" in cmdline and "rw" not in cmdline
    assert not any(o.startswith("systemd.machine_id=") for o in cmdline), "every box makes its own"
    config = mtype(boot, "config.txt")
    assert config == (disk.root / "usr/lib/mamori/rpi-config.txt").read_text()
    assert (
        "kernel=vmlinuz" in config
        and "arm_64bit=1" in config
        and "initramfs initrd.img followkernel" in config
    )


def test_boot_slot_b_is_empty_fat_root_b_empty_and_data_is_ext4(disk: Disk, tmp_path: Path) -> None:
    parts = partitions(disk.path)
    boot_b = fat(disk.path, parts[3], tmp_path, "boot-b")
    assert fat_files(boot_b) == set(), "slot B gets its files from the first update"
    with open(disk.path, "rb") as f:
        f.seek(parts[6]["start"] * 512)
        assert f.read(1 << 20) == bytes(1 << 20), "root B holds no file system before the first update"
    for number, label in ((5, "mamori-root-a"), (7, "mamori-data")):
        img = extract(disk.path, parts[number], tmp_path / f"p{number}.img")
        info = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True, timeout=30).stdout
        assert f"Filesystem volume name:   {label}" in info
        img.unlink()


def test_boot_files_carry_the_machine_id_option(tmp_path: Path) -> None:
    dest = tmp_path / "boot"
    dest.mkdir()
    subprocess.run([str(BOOT_FILES), str(fake_root(tmp_path)), str(dest), f"{DISK_ID}-06",
                    "systemd.machine_id=" + "ab" * 16], check=True, timeout=60)  # fmt: skip
    cmdline = (dest / "cmdline.txt").read_text().split()
    assert f"root=PARTUUID={DISK_ID}-06" in cmdline and "systemd.machine_id=" + "ab" * 16 in cmdline


# ------------------------------------------------------------------ the installer on the disk's partitions


@dataclass
class ImagePi(mu.RaspberryPi):
    """The Pi platform over a disk image file instead of a Pi: each partition is copied out of the image
    (_part) and used as the device. FAT partitions are "mounted" by copying their files out with mtools
    and what changed back in; ext4 ones (read-only) by debugfs rdump of what rpi-boot-files reads. mkfs,
    wipefs and the slot write act on the partition files themselves."""

    disk: Path = Path()

    def _part(self, number: int) -> Path:
        path = self.partuuids / f"{self._disk_id()}-{number:02d}"
        if not path.exists():
            self.partuuids.mkdir(parents=True, exist_ok=True)
            extract(self.disk, partitions(self.disk)[number], path)
        return path

    @contextlib.contextmanager
    def _mounted(self, device: Path, name: str, *options: str) -> Iterator[Path]:
        point = self.mounts / name
        shutil.rmtree(point, ignore_errors=True)
        point.mkdir(parents=True)
        if "ext4" in options:
            _ext4_copy_out(device, point)
            yield point
            return
        before = _fat_copy_out(device, point)
        yield point
        _fat_write_back(device, point, before)


def _ext4_copy_out(device: Path, point: Path) -> None:
    lib = subprocess.run(["debugfs", "-R", "ls /usr/lib", str(device)], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()  # fmt: skip
    wanted = ["usr/lib/raspi-firmware"] + [f"usr/lib/{n}" for n in lib if n.startswith("linux-image-")]
    (point / "usr/lib/mamori").mkdir(parents=True)
    cmds = [f"rdump /boot {point}"] + [f"rdump /{w} {point / 'usr/lib'}" for w in wanted]
    # Of /usr/lib/mamori (the whole venv on a real root) only what rpi-boot-files is and reads.
    cmds += [
        f"dump -p /usr/lib/mamori/{f} {point / 'usr/lib/mamori' / f}"
        for f in ("rpi-boot-files", "rpi-config.txt")
    ]
    (point.parent / f"{point.name}.debugfs").write_text("\n".join(cmds) + "\n")
    subprocess.run(["debugfs", "-f", str(point.parent / f"{point.name}.debugfs"), str(device)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fat_copy_out(device: Path, point: Path) -> dict[str, str]:
    files = fat_files(device)
    if files:
        subprocess.run(["mcopy", "-s", "-n", "-i", str(device), "::/*", str(point)], check=True, env=MTOOLS,
                       timeout=300, capture_output=True)  # fmt: skip
    return {str(p.relative_to(point)): _digest(p) for p in point.rglob("*") if p.is_file()}


def _fat_write_back(device: Path, point: Path, before: dict[str, str]) -> None:
    after = {str(p.relative_to(point)): _digest(p) for p in point.rglob("*") if p.is_file()}
    on_fat = fat_files(device)
    if not before and not on_fat and after:  # a file system made anew (mkfs): one copy of the whole tree
        subprocess.run(["mcopy", "-s", "-i", str(device), *map(str, point.iterdir()), "::/"], check=True, env=MTOOLS,
                       timeout=300)  # fmt: skip
        return
    for rel in sorted(set(before) - set(after)):
        subprocess.run(["mdel", "-i", str(device), f"::/{rel}"], check=True, env=MTOOLS, timeout=30)
    for rel in sorted(after):
        if before.get(rel) == after[rel]:
            continue
        parts = Path(rel).parts
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if f"{folder}/" not in on_fat:
                subprocess.run(["mmd", "-i", str(device), f"::/{folder}"], check=True, env=MTOOLS, timeout=30)
                on_fat.add(f"{folder}/")
        subprocess.run(["mcopy", "-o", "-i", str(device), str(point / rel), f"::/{rel}"], check=True, env=MTOOLS,
                       timeout=120)  # fmt: skip


def _dt(path: Path, **values: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (path / name).write_bytes(value.to_bytes(4, "big"))


@pytest.fixture
def pi(disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ImagePi:
    """The box running slot A of `disk`, booted normally."""
    version = tmp_path / "IMAGE_VERSION"
    version.write_text(f"{disk.version or '2026.12.1'}\n")
    monkeypatch.setattr(mu, "VERSION_FILE", version)
    (tmp_path / "cmdline").write_text(f"coherent_pool=1M root=PARTUUID={DISK_ID}-05 ro rootwait\n")
    (tmp_path / "machine-id").write_text("cd" * 16 + "\n")
    plat = ImagePi(partuuids=tmp_path / "parts", cmdline=tmp_path / "cmdline", bootloader=tmp_path / "dt",
                   mounts=tmp_path / "mnt", state=tmp_path / "state", machine_id_file=tmp_path / "machine-id",
                   disk=disk.path)  # fmt: skip
    plat.state.mkdir()
    _dt(plat.bootloader, tryboot=0, partition=2)
    return plat


def _autoboot(pi: ImagePi) -> dict[str, int]:
    return mu.parse_autoboot(mtype(str(pi._part(1)), "autoboot.txt"))


def test_ordinary_boot_changes_nothing(pi: ImagePi) -> None:
    """Booted normally (no update, or the trial failed and the firmware went back): autoboot.txt stays."""
    before = pi._part(1).read_bytes()
    assert pi.running_slot() == "a" and not pi.mark_good()
    assert pi._part(1).read_bytes() == before


def test_forget_keeps_the_running_partition_as_default(pi: ImagePi) -> None:
    """Before slot A is written while B runs, autoboot.txt must say: boot B, try A (never the other way);
    boot partition A is wiped so that a half-written slot A can never boot."""
    pi.cmdline.write_text(f"root=PARTUUID={DISK_ID}-06 ro\n")
    assert fat_files(pi._part(2))
    pi.forget("a")
    assert _autoboot(pi) == {"all": 3, "tryboot": 2}
    assert fs_type(pi._part(2)) == "", "boot partition A holds no file system any more"
    assert pi.reboot_argv()[-1] == "0 tryboot"


def test_update_is_tried_once_and_becomes_the_default_when_healthy(
    pi: ImagePi, disk: Disk, tmp_path: Path
) -> None:
    """The whole tryboot cycle on the disk's partitions: the installer writes root B from the signed bundle,
    fills boot partition B from the *new* root's rpi-boot-files, leaves autoboot.txt booting A; the tryboot
    of B that passes its health check swaps autoboot.txt, and boot partition A is untouched throughout."""
    if disk.bundle is None or disk.keys is None:
        pytest.skip("no update bundle for this disk")
    boot_a = pi._part(2).read_bytes()
    installer = mu.Installer(pi, state=pi.state, keys=disk.keys, version_file=mu.VERSION_FILE, arch="arm64",
                             quiet=True)  # fmt: skip
    with open(disk.bundle, "rb") as f:
        result = installer.install(f.fileno(), tries=1)
    assert result["ok"] and result["slot"] == "b"
    assert _autoboot(pi) == {"all": 2, "tryboot": 3}, "the next ordinary boot is still A"
    boot_b = pi._part(3)
    cmdline = mtype(str(boot_b), "cmdline.txt").split()
    assert f"root=PARTUUID={DISK_ID}-06" in cmdline and "ro" in cmdline
    assert "systemd.machine_id=" + "cd" * 16 in cmdline, "slot B boots with this box's machine id"
    new_kernel = subprocess.run(["tar", "-xOf", str(disk.bundle), "vmlinuz"], capture_output=True, check=True,
                                timeout=120).stdout  # fmt: skip
    assert fat_bytes(boot_b, "vmlinuz") == new_kernel, "boot B carries the new version's kernel"
    assert fat_bytes(boot_b, "config.txt") == fat_bytes(pi._part(2), "config.txt")
    assert fat_files(boot_b) == fat_files(pi._part(2)), "the same firmware, device trees and files as A"
    assert pi.slots()["b"]["state"] == "trial"
    assert pi.reboot_argv() == ["systemctl", "--no-block", "reboot", "0 tryboot"]

    # The firmware tries B once; the health check passed: B becomes the default, A the next trial.
    pi.cmdline.write_text(" ".join(cmdline) + "\n")
    _dt(pi.bootloader, tryboot=1, partition=3)
    mu.VERSION_FILE.write_text(result["version"] + "\n")
    assert pi.running_slot() == "b" and pi.mark_good()
    assert _autoboot(pi) == {"all": 3, "tryboot": 2}
    assert pi.slots()["b"]["state"] == "good"
    assert pi._part(2).read_bytes() == boot_a, "boot partition A (the fallback) was never written"


def test_failed_trial_falls_back_without_a_write(pi: ImagePi) -> None:
    """The tried slot B never reached its health check: the firmware boots A again (tryboot flag cleared);
    marking good there is refused and autoboot.txt still names A, so B stays a one-off trial."""
    before = pi._part(1).read_bytes()
    _dt(pi.bootloader, tryboot=0, partition=2)
    assert not pi.mark_good()
    _dt(pi.bootloader, tryboot=1, partition=3)  # a tryboot flag that does not match the running slot A
    assert not pi.mark_good()
    assert pi._part(1).read_bytes() == before
