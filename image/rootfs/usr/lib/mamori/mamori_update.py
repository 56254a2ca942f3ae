"""mamori-update: the root side of software updates (A/B root slots, automatic fallback), run on the box.

    mamori-update status [--json]          which slot runs, the fallback, what became of the last update
    mamori-update install BUNDLE [--reboot] from a root shell (a bundle file anywhere)
    mamori-update request                  mamori-update-install.service: takes the one request the control
                                           plane wrote (docs/update.md, the contract) and installs it
    mamori-update boot-report              mamori-update-report.service, after a healthy boot: marks a Pi's
                                           trial slot good (autoboot.txt) and writes boot.json
    mamori-update autoboot-text N M        the Pi's autoboot.txt (the image build writes it with this too)

Why a script of its own and not the daemon: the daemon is sandboxed and must never write a partition or a
boot entry. This file uses only Python's standard library and the image's openssl, zstd, blkid, mkfs.vfat
and mount, so a broken Mamori venv cannot stop the next update from fixing it.

Order of an install (each step refuses with a code of docs/update.md, nothing written before the last
check): the bundle is copied member by member into unlinked private files (the control plane cannot change
what is checked after the check) -> the manifest's Ed25519 signature -> the member hashes -> version (no
downgrade unless the vendor signed `rollback-allowed yes`, never the same), min-from-version, arch -> the
inactive slot's boot entry is removed -> the root file system is written to the inactive slot and read back
against the signed digest -> only then the new boot entry (amd64: systemd-boot with boot counting; Pi: the
inactive boot partition, tried once with `reboot "0 tryboot"`). A power cut or an error at any point leaves
the running slot and its boot entry as they were; the next attempt starts over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STATE = Path("/var/lib/mamori/update")
KEYS = Path("/usr/share/mamori/update-keys")
VERSION_FILE = Path("/usr/share/mamori/IMAGE_VERSION")
LOCK = Path("/run/mamori-update/lock")  # the install unit's RuntimeDirectory (/run itself is read-only there)
MEMBERS = ("manifest", "manifest.sig", "root.img.zst", "vmlinuz", "initrd.img", "notes-ja.txt")
BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
VERSION = re.compile(r"[0-9]{1,10}(\.[0-9]{1,10}){0,5}")
CHUNK = 4 << 20
# The Pi's MBR partition numbers (scripts/image-lib.sh makes the same layout): 1 holds autoboot.txt.
RPI_BOOT = {"a": 2, "b": 3}
RPI_ROOT = {"a": 5, "b": 6}
RPI_DATA = 7

# Refusal and failure texts by code (docs/update.md); {placeholders} are filled from the details.
MESSAGES: dict[str, tuple[str, str]] = {
    "update.signature": (
        "署名が正しくありません。登録された鍵で署名された更新ファイルではないため、入れませんでした。",
        "the bundle's signature does not match any key in {keys}: refused",
    ),
    "update.format": (
        "更新ファイルの形式が正しくありません（{detail}）。",
        "not a Mamori update bundle: {detail}",
    ),
    "update.hash": (
        "更新ファイルの中身が署名された内容と一致しません（{detail}）。入れませんでした。",
        "bundle contents do not match its signed manifest ({detail}): refused",
    ),
    "update.downgrade": (
        "版 {version} は動作中の版 {running} より古いため、入れませんでした（戻すには保守業者が署名した戻し用の更新が必要です）。",
        "version {version} is older than the running {running}: refused (a downgrade needs a bundle signed with rollback-allowed yes)",
    ),
    "update.same": (
        "版 {version} はすでに動作しています。入れる必要はありません。",
        "version {version} is already running: nothing to install",
    ),
    "update.min_from": (
        "この更新は版 {min_from} 以降からしか入れられません（動作中: {running}）。先に間の版を入れてください。",
        "this update needs version {min_from} or newer running (running: {running}): install the version between first",
    ),
    "update.arch": (
        "この更新ファイルは {arch} 用です。この機器（{box}）には入れられません。",
        "the bundle is for {arch}, this box is {box}: refused",
    ),
    "update.not_image": (
        "この機器はイメージから起動していないか、予備の領域がないため更新できません（{detail}）。",
        "this is not an image box with a second slot ({detail})",
    ),
    "update.space": ("更新に必要な空き容量がありません（{detail}）。", "not enough room: {detail}"),
    "update.busy": (
        "別の更新を入れている最中です。終わってからもう一度お試しください。",
        "another install is in progress",
    ),
    "update.write": (
        "新しい版を書き込めませんでした（{detail}）。動作中の版はそのままです。",
        "writing the new version failed ({detail}); the running version is untouched",
    ),
}


class Refused(Exception):
    """An install that stops with a code of docs/update.md; nothing of the running system was changed."""

    def __init__(self, code: str, **details: Any) -> None:
        self.code = code
        ja, en = MESSAGES[code]
        fill = {k: str(v) for k, v in details.items()}
        self.message_ja = ja.format_map(_Default(fill))
        self.message_en = en.format_map(_Default(fill))
        super().__init__(f"{code}: {self.message_en}")


class _Default(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def parse_version(text: str) -> tuple[int, ...]:
    text = text.strip()
    if not VERSION.fullmatch(text):
        raise Refused("update.format", detail=f"not a version: {text[:40]!r}")
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1: numerically part by part, missing trailing parts count as 0 (2026.12 == 2026.12.0)."""
    va, vb = parse_version(a), parse_version(b)
    width = max(len(va), len(vb))
    va, vb = va + (0,) * (width - len(va)), vb + (0,) * (width - len(vb))
    return (va > vb) - (va < vb)


@dataclass
class Manifest:
    fields: dict[str, str]
    hashes: dict[str, str]

    @property
    def version(self) -> str:
        return self.fields["version"]

    @property
    def arch(self) -> str:
        return self.fields.get("arch", "amd64")


def parse_manifest(text: str) -> Manifest:
    lines = text.splitlines()
    if not lines or lines[0] != "mamori-update 1":
        raise Refused("update.format", detail="the manifest does not start with 'mamori-update 1'")
    fields: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for line in lines[1:]:
        if m := re.fullmatch(r"([0-9a-f]{64})  (\S+)", line):
            if m.group(2) not in MEMBERS[2:] or m.group(2) in hashes:
                raise Refused("update.format", detail=f"hash line for {m.group(2)!r}")
            hashes[m.group(2)] = m.group(1)
        elif m := re.fullmatch(r"([a-z][a-z0-9-]*) (.+)", line):
            fields[m.group(1)] = m.group(2)
        elif line:
            raise Refused("update.format", detail=f"manifest line {line[:40]!r}")
    for key in ("version", "root-size", "root-sha256"):
        if key not in fields:
            raise Refused("update.format", detail=f"the manifest has no {key}")
    parse_version(fields["version"])
    if not fields["root-size"].isdigit() or not re.fullmatch(r"[0-9a-f]{64}", fields["root-sha256"]):
        raise Refused("update.format", detail="root-size or root-sha256")
    for name in ("root.img.zst", "vmlinuz", "initrd.img"):
        if name not in hashes:
            raise Refused("update.format", detail=f"no hash line for {name}")
    return Manifest(fields, hashes)


def check_version(manifest: Manifest, running: str, box_arch: str) -> None:
    """The signed manifest against the running box: no downgrade without the vendor's signed permission,
    never the same version again, the min-from-version step kept, the right architecture."""
    if manifest.arch != box_arch:
        raise Refused("update.arch", arch=manifest.arch, box=box_arch)
    order = compare_versions(manifest.version, running)
    if order == 0:
        raise Refused("update.same", version=manifest.version)
    if order < 0 and manifest.fields.get("rollback-allowed") != "yes":
        raise Refused("update.downgrade", version=manifest.version, running=running)
    min_from = manifest.fields.get("min-from-version")
    if min_from and compare_versions(running, min_from) < 0:
        raise Refused("update.min_from", min_from=min_from, running=running)


def verify_signature(manifest: bytes, signature: bytes, keys: Path) -> Path:
    """The Ed25519 signature over the manifest's exact bytes, with openssl (as scripts/image-bundle.sh
    signs). Returns the key that matched."""
    pems = sorted(keys.glob("*.pem"))
    with tempfile.TemporaryDirectory(prefix="mamori-update-sig.") as tmp:
        (Path(tmp) / "m").write_bytes(manifest)
        (Path(tmp) / "s").write_bytes(signature)
        for key in pems:
            res = subprocess.run(
                ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
                 "-in", f"{tmp}/m", "-sigfile", f"{tmp}/s"],
                capture_output=True, timeout=60,
            )  # fmt: skip
            if res.returncode == 0:
                return key
    raise Refused("update.signature", keys=keys)


@dataclass
class Bundle:
    """A bundle's members, each copied into an unlinked file only this process holds."""

    manifest: Manifest
    files: dict[str, IO[bytes]]
    notes_ja: str = ""

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def open_bundle(
    fd: int, keys: Path, workdir: Path, precheck: Callable[[Manifest], None] | None = None
) -> Bundle:
    """Reads the tar from `fd`: manifest and signature first, checked before anything else is copied;
    then each member is copied while it is hashed and compared with the signed manifest."""
    with os.fdopen(os.dup(fd), "rb") as raw:
        try:
            tar = tarfile.open(fileobj=raw, mode="r:")
            infos = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Refused("update.format", detail=f"not a tar file ({exc})") from None
        names = [i.name for i in infos]
        if (
            len(set(names)) != len(names)
            or not set(names) <= set(MEMBERS)
            or not all(i.isreg() for i in infos)
        ):
            raise Refused("update.format", detail=f"unexpected members {sorted(names)[:8]}")
        by_name = {i.name: i for i in infos}
        if "manifest" not in by_name or "manifest.sig" not in by_name:
            raise Refused("update.format", detail="no manifest or no signature")
        if by_name["manifest"].size > 65536 or by_name["manifest.sig"].size > 1024:
            raise Refused("update.format", detail="manifest too large")
        text = _read_member(tar, by_name["manifest"])
        verify_signature(text, _read_member(tar, by_name["manifest.sig"]), keys)
        try:
            manifest = parse_manifest(text.decode("utf-8"))
        except UnicodeDecodeError:
            raise Refused("update.format", detail="manifest is not UTF-8") from None
        if precheck is not None:  # version and arch: refused before a byte of the system is copied
            precheck(manifest)
        need = sum(by_name[n].size for n in manifest.hashes if n in by_name) + (16 << 20)
        free = shutil.disk_usage(workdir).free
        if free < need:
            raise Refused(
                "update.space", detail=f"{need >> 20} MiB needed in {workdir}, {free >> 20} MiB free"
            )
        files: dict[str, IO[bytes]] = {}
        bundle = Bundle(manifest, files)
        try:
            for name, digest in manifest.hashes.items():
                if name not in by_name:
                    raise Refused("update.hash", detail=f"{name} is missing")
                files[name] = tempfile.TemporaryFile(dir=workdir)
                src = tar.extractfile(by_name[name])
                assert src is not None
                h = hashlib.sha256()
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    files[name].write(chunk)
                if h.hexdigest() != digest:
                    raise Refused("update.hash", detail=name)
                files[name].flush()
                files[name].seek(0)
            if "notes-ja.txt" in by_name and "notes-ja.txt" not in manifest.hashes:
                raise Refused("update.format", detail="notes-ja.txt has no hash line")
            if "notes-ja.txt" in files:
                bundle.notes_ja = files["notes-ja.txt"].read(16384).decode("utf-8", "replace")
        except BaseException:
            bundle.close()
            raise
        return bundle


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(info)
    assert f is not None
    return f.read()


def _sh(*argv: str, timeout: float = 600) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


def write_slot(
    root_zst: IO[bytes], device: Path, size: int, digest: str, progress: Callable[[str, int], None]
) -> None:
    """Decompresses the new root file system onto the inactive slot's device and reads it back against
    the signed digest (from the disk, not the page cache)."""
    if size > _device_size(device):
        raise Refused("update.space", detail=f"the new system ({size >> 20} MiB) does not fit in {device}")
    written = 0
    last = -1
    dec = subprocess.Popen(["zstd", "-q", "-dc"], stdin=root_zst.fileno(), stdout=subprocess.PIPE)
    assert dec.stdout is not None
    try:
        out = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
        try:
            while chunk := dec.stdout.read(CHUNK):
                if written + len(chunk) > size:
                    raise Refused("update.hash", detail="root.img.zst is larger than root-size")
                os.write(out, chunk)
                written += len(chunk)
                pct = 10 + 75 * written // max(size, 1)
                if pct // 5 != last // 5:
                    progress("write", pct)
                    last = pct
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        dec.stdout.close()
        rc = dec.wait(timeout=120)
    if rc != 0 or written != size:
        raise Refused("update.write", detail=f"zstd exit {rc}, {written} of {size} bytes")
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        h = hashlib.sha256()
        left = size
        while left > 0:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        progress("verify-readback", 95)
    finally:
        os.close(fd)
    if h.hexdigest() != digest:
        raise Refused("update.write", detail=f"{device} does not read back correctly")


def _device_size(device: Path) -> int:
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: str) -> None:
    """Write through a temp file made anew (O_EXCL, so never through a link): the state directory is the
    control plane's, and a link it left at the temp name (to a slot's device) would have root write there."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a power cut, or a planted link (removed, not followed)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def open_state_file(path: Path, flags: int) -> IO[str]:
    """A file of the control plane's state directory, opened for writing only if it is a plain file there: no
    link is followed (a link to a block device would have root write into a slot or the partition table), and
    a FIFO neither blocks nor is written (OSError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | flags, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "w", encoding="utf-8")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


# ---------------------------------------------------------------- platforms


class Platform:
    """Where the slots are and how a slot becomes the next boot; one per boot loader."""

    name = ""

    def running_slot(self) -> str:
        raise NotImplementedError

    def slot_device(self, slot: str) -> Path:
        raise NotImplementedError

    def check(self) -> None:
        """Before anything is read: the boot loader's files are there (and stay mounted)."""

    def persist_machine_id(self, machine_id: str) -> bool:
        """Puts systemd.machine_id= on the running slot's kernel command line (the root is read-only, so
        /etc/machine-id cannot hold it); updates carry it over. False when it is already there."""
        raise NotImplementedError

    def forget(self, slot: str) -> None:
        """Makes `slot` unbootable before it is overwritten (its boot entry goes first)."""
        raise NotImplementedError

    def make_bootable(self, slot: str, bundle: Bundle, device: Path, tries: int) -> None:
        raise NotImplementedError

    def reboot_argv(self) -> list[str]:
        return ["systemctl", "--no-block", "reboot"]

    def slots(self) -> dict[str, dict[str, Any]]:
        """Each slot's version and state: good, trial (tries left), bad, or absent."""
        raise NotImplementedError

    def mark_good(self) -> bool:
        """After a healthy boot: make a trial slot the default (Pi). systemd-bless-boot does it on amd64."""
        return False


def _cmdline_root(cmdline: str) -> str:
    m = re.search(r"(?:^|\s)root=PARTUUID=(\S+)", cmdline)
    if not m:
        raise Refused("update.not_image", detail="no root=PARTUUID= on the kernel command line")
    return m.group(1).lower()


@dataclass
class Efi(Platform):
    """amd64: systemd-boot on the ESP, GPT partitions mamori-root-a/-b, boot counting (mamori-<slot>+N.conf)."""

    esp: Path = Path("/efi")
    partlabels: Path = Path("/dev/disk/by-partlabel")
    cmdline: Path = Path("/proc/cmdline")
    machine_id_file: Path = Path("/etc/machine-id")
    name: str = "efi"

    def slot_device(self, slot: str) -> Path:
        link = self.partlabels / f"mamori-root-{slot}"
        if not link.exists():
            raise Refused("update.not_image", detail=f"no partition mamori-root-{slot}")
        return link.resolve()

    def _partuuid(self, device: Path) -> str:
        return _sh("blkid", "-s", "PARTUUID", "-o", "value", str(device)).strip().lower()

    def running_slot(self) -> str:
        root = _cmdline_root(self.cmdline.read_text())
        for slot in ("a", "b"):
            with contextlib.suppress(Refused, subprocess.CalledProcessError):
                if self._partuuid(self.slot_device(slot)) == root:
                    return slot
        raise Refused("update.not_image", detail=f"root=PARTUUID={root} is neither slot")

    @property
    def entries(self) -> Path:
        path = self.esp / "loader/entries"
        if not path.is_dir():
            raise Refused("update.not_image", detail=f"the EFI system partition is not mounted at {self.esp}")
        return path

    def _entries_of(self, slot: str) -> list[Path]:
        return sorted(p for p in self.entries.glob(f"mamori-{slot}*.conf") if re.fullmatch(
            rf"mamori-{slot}(\+\d+(-\d+)?)?\.conf", p.name))  # fmt: skip

    def check(self) -> None:
        private = os.environ.get("MAMORI_UPDATE_ESP_MOUNT")
        if private:
            # mamori-update-install.service: the ESP mounted in the unit's own mount namespace, for as long as
            # the unit runs (the /efi automount would expire after two idle minutes).
            point = Path(private)
            point.mkdir(parents=True, exist_ok=True)
            if not os.path.ismount(point):
                _sh(
                    "mount",
                    "-t",
                    "vfat",
                    "-o",
                    "umask=0077,noatime",
                    str(self.partlabels / "esp"),
                    str(point),
                )
            self.esp = point
        self._hold = os.open(self.entries, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def persist_machine_id(self, machine_id: str) -> bool:
        root = _cmdline_root(self.cmdline.read_text())
        for entry in self.entries.glob("mamori-*.conf"):
            text = entry.read_text()
            if f"root=partuuid={root}" not in text.lower() or "systemd.machine_id=" in text:
                continue
            atomic_write(
                entry, re.sub(r"^(options .*)$", rf"\1 systemd.machine_id={machine_id}", text, flags=re.M)
            )
            return True
        return False

    def forget(self, slot: str) -> None:
        for entry in self._entries_of(slot):
            entry.unlink()
        _sync_dir(self.entries)

    def make_bootable(self, slot: str, bundle: Bundle, device: Path, tries: int) -> None:
        kdir = self.esp / f"mamori-{slot}"
        kdir.mkdir(exist_ok=True)
        for name in ("vmlinuz", "initrd.img"):
            src = bundle.files[name]
            src.seek(0)
            tmp = kdir / f"{name}.new"
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, kdir / name)
        partuuid = self._partuuid(device)
        options = re.sub(r"^initrd=\S+ ", "", self.cmdline.read_text().strip())
        options = re.sub(r"root=PARTUUID=\S+", f"root=PARTUUID={partuuid}", options)
        options = with_machine_id(options, self.machine_id_file)
        text = (
            f"title Mamori ({slot.upper()})\nsort-key mamori\nversion {bundle.manifest.version}\n"
            f"linux /mamori-{slot}/vmlinuz\ninitrd /mamori-{slot}/initrd.img\noptions {options}\n"
        )
        entry = self.entries / f"mamori-{slot}+{tries}.conf"
        atomic_write(entry, text)

    def slots(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for slot in ("a", "b"):
            for entry in self._entries_of(slot):
                version = re.search(r"^version (\S+)", entry.read_text(), re.M)
                m = re.fullmatch(rf"mamori-{slot}(?:\+(\d+)(?:-(\d+))?)?\.conf", entry.name)
                assert m is not None
                left = m.group(1)
                state = "good" if left is None else ("bad" if left == "0" else "trial")
                out[slot] = {"version": version.group(1) if version else None, "state": state,
                             "tries_left": int(left) if left is not None else None}  # fmt: skip
        return out


@dataclass
class RaspberryPi(Platform):
    """arm64: MBR with the control partition (1: autoboot.txt), boot partitions A/B (2, 3: firmware,
    kernel, cmdline.txt) and root partitions A/B (5, 6). The firmware boots autoboot.txt's [all]
    boot_partition; `reboot "0 tryboot"` boots its [tryboot] one once. Marking good swaps the two."""

    partuuids: Path = Path("/dev/disk/by-partuuid")
    cmdline: Path = Path("/proc/cmdline")
    bootloader: Path = Path("/proc/device-tree/chosen/bootloader")
    mounts: Path = Path("/run/mamori-update")
    state: Path = STATE
    machine_id_file: Path = Path("/etc/machine-id")
    name: str = "rpi"

    def _disk_id(self) -> str:
        return _cmdline_root(self.cmdline.read_text()).rsplit("-", 1)[0]

    def _part(self, number: int) -> Path:
        link = self.partuuids / f"{self._disk_id()}-{number:02d}"
        if not link.exists():
            raise Refused("update.not_image", detail=f"no partition {number}")
        return link.resolve()

    def slot_device(self, slot: str) -> Path:
        return self._part(RPI_ROOT[slot])

    def running_slot(self) -> str:
        suffix = _cmdline_root(self.cmdline.read_text()).rsplit("-", 1)[-1]
        for slot, number in RPI_ROOT.items():
            if suffix == f"{number:02d}":
                return slot
        raise Refused("update.not_image", detail=f"root partition {suffix} is neither slot")

    @contextlib.contextmanager
    def _mounted(self, device: Path, name: str, *options: str) -> Iterator[Path]:
        point = self.mounts / name
        point.mkdir(parents=True, exist_ok=True)
        _sh("mount", *options, str(device), str(point))
        try:
            yield point
        finally:
            subprocess.run(["umount", str(point)], check=False, timeout=120)

    def _autoboot(self, default: int, trial: int) -> None:
        with self._mounted(self._part(1), "control", "-t", "vfat") as ctl:
            path = ctl / "autoboot.txt"
            want = autoboot_text(default, trial)
            if not path.exists() or path.read_text() != want:
                atomic_write(path, want)

    def forget(self, slot: str) -> None:
        # The [all] partition stays the running one; the target is only ever the [tryboot] one.
        self._autoboot(RPI_BOOT[self.running_slot()], RPI_BOOT[slot])
        _sh("wipefs", "-a", "-q", str(self._part(RPI_BOOT[slot])))
        self._versions(slot, None)

    def make_bootable(self, slot: str, bundle: Bundle, device: Path, tries: int) -> None:
        boot = self._part(RPI_BOOT[slot])
        _sh("mkfs.vfat", "-F", "32", "-n", f"MAMORI-{slot.upper()}", str(boot))
        partuuid = f"{self._disk_id()}-{RPI_ROOT[slot]:02d}"
        with self._mounted(device, "newroot", "-o", "ro,noload", "-t", "ext4") as newroot:
            with self._mounted(boot, "boot", "-t", "vfat") as bootdir:
                # The new version's own script fills its boot partition (firmware, kernel, config.txt).
                keep = with_machine_id("", self.machine_id_file).strip()
                _sh(f"{newroot}/usr/lib/mamori/rpi-boot-files", str(newroot), str(bootdir), partuuid, keep)
                _sh("sync")
        self._versions(slot, {"version": bundle.manifest.version, "state": "trial", "tries_left": 1})

    def reboot_argv(self) -> list[str]:
        return ["systemctl", "--no-block", "reboot", "0 tryboot"]

    def persist_machine_id(self, machine_id: str) -> bool:
        with self._mounted(self._part(RPI_BOOT[self.running_slot()]), "running-boot", "-t", "vfat") as boot:
            path = boot / "cmdline.txt"
            line = path.read_text().strip()
            if "systemd.machine_id=" in line:
                return False
            atomic_write(path, f"{line} systemd.machine_id={machine_id}\n")
            return True

    def _versions(self, slot: str, value: dict[str, Any] | None) -> None:
        path = self.state / "slots.json"
        data = _load_json(path) or {}
        data[slot] = value
        atomic_write(path, json.dumps(data, sort_keys=True) + "\n")

    def slots(self) -> dict[str, dict[str, Any]]:
        data = _load_json(self.state / "slots.json") or {}
        running = self.running_slot()
        data[running] = {"version": VERSION_FILE.read_text().strip() if VERSION_FILE.exists() else None,
                         "state": "good", "tries_left": None}  # fmt: skip
        return {k: v for k, v in data.items() if v}

    def _dt_int(self, name: str) -> int | None:
        path = self.bootloader / name
        if not path.exists():
            return None
        return int.from_bytes(path.read_bytes()[:4], "big")

    def mark_good(self) -> bool:
        slot = self.running_slot()
        if self._dt_int("tryboot") != 1 or self._dt_int("partition") != RPI_BOOT[slot]:
            return False
        other = "b" if slot == "a" else "a"
        self._autoboot(RPI_BOOT[slot], RPI_BOOT[other])
        self._versions(
            slot, {"version": VERSION_FILE.read_text().strip(), "state": "good", "tries_left": None}
        )
        return True


def with_machine_id(options: str, machine_id_file: Path) -> str:
    """The new slot boots with the machine id this box runs with: the running command line may not carry
    it yet (the first boot wrote it into its entry after the kernel had started)."""
    if re.search(r"(?:^|\s)systemd\.machine_id=", options):
        return options
    with contextlib.suppress(OSError):
        machine_id = machine_id_file.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{32}", machine_id):
            return f"{options} systemd.machine_id={machine_id}"
    return options


def autoboot_text(default: int, trial: int) -> str:
    """The Pi firmware's autoboot.txt: boot `default` normally, `trial` once after `reboot "0 tryboot"`;
    tryboot_a_b=1 makes the firmware read the ordinary config.txt of the tried partition."""
    return f"[all]\ntryboot_a_b=1\nboot_partition={default}\n[tryboot]\nboot_partition={trial}\n"


def parse_autoboot(text: str) -> dict[str, int]:
    section, out = "all", {}
    for line in text.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = m.group(1)
        elif m := re.fullmatch(r"boot_partition=(\d+)", line):
            out[section] = int(m.group(1))
    return out


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_json(path: Path, limit: int = 65536) -> Any:
    """A small JSON file of the state directory, or None. The directory is the control plane's: a link, a FIFO
    or a device left there (/dev/zero) must neither hang nor exhaust this root process."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            raw = os.read(fd, limit + 1)
        finally:
            os.close(fd)
        return json.loads(raw.decode("utf-8")) if len(raw) <= limit else None
    except (OSError, ValueError):
        return None


def detect_platform() -> Platform:
    if Path("/proc/device-tree/chosen/bootloader").exists():
        return RaspberryPi()
    return Efi()


# ---------------------------------------------------------------- the installer


@dataclass
class Installer:
    platform: Platform
    state: Path = STATE
    keys: Path = KEYS
    version_file: Path = VERSION_FILE
    arch: str = field(default_factory=host_arch)
    request_id: str = ""
    quiet: bool = False

    def progress(self, step: str, percent: int, ja: str = "", en: str = "") -> None:
        texts = {
            "verify": ("更新ファイルを確認しています", "checking the bundle"),
            "write": ("新しい版を予備の領域に書き込んでいます", "writing the new version to the spare slot"),
            "verify-readback": ("書き込んだ内容を確かめています", "reading the new slot back"),
            "bootentry": (
                "次の起動で新しい版を試すよう設定しています",
                "making the new version the next boot",
            ),
        }
        dja, den = texts.get(step, ("", ""))
        line = {"id": self.request_id, "step": step, "percent": percent,
                "message_ja": ja or dja, "message_en": en or den}  # fmt: skip
        with contextlib.suppress(OSError), open_state_file(self.state / "progress.jsonl", os.O_APPEND) as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        if not self.quiet:
            print(f"mamori-update: [{percent:3d}%] {line['message_en']}", flush=True)

    def running_version(self) -> str:
        if not self.version_file.exists():
            raise Refused("update.not_image", detail=f"no {self.version_file}")
        return self.version_file.read_text().strip()

    def install(self, fd: int, tries: int) -> dict[str, Any]:
        """Verifies the bundle behind `fd` and writes it to the inactive slot; returns the result fields."""
        self.state.mkdir(parents=True, exist_ok=True)
        self.progress("verify", 0)
        self.platform.check()
        running = self.running_version()
        slot = self.platform.running_slot()
        target = "b" if slot == "a" else "a"
        device = self.platform.slot_device(target)
        bundle = open_bundle(fd, self.keys, self.state, lambda m: check_version(m, running, self.arch))
        try:
            manifest = bundle.manifest
            self.progress("verify", 10)
            # From here on the inactive slot is written: its boot entry goes first, so a half-written slot
            # can never be booted; the running slot and its entry are not touched at all.
            self.platform.forget(target)
            write_slot(bundle.files["root.img.zst"], device, int(manifest.fields["root-size"]),
                       manifest.fields["root-sha256"], lambda step, pct: self.progress(step, pct))  # fmt: skip
            self.progress("bootentry", 96)
            self.platform.make_bootable(target, bundle, device, tries)
            os.sync()
        finally:
            bundle.close()
        pending = {"id": self.request_id, "version": manifest.version, "slot": target, "from_slot": slot,
                   "from_version": running, "at": now_iso()}  # fmt: skip
        atomic_write(self.state / "pending.json", json.dumps(pending) + "\n")
        ja = f"版 {manifest.version} を書き込みました。再起動すると新しい版を試し、確認に失敗すれば元の版に戻ります。"
        en = f"version {manifest.version} is the next boot (slot {target}); the running one stays as fallback"
        self.progress("done", 100, ja, en)
        return {"ok": True, "version": manifest.version, "slot": target, "code": "", "message_ja": ja,
                "message_en": en}  # fmt: skip


@contextlib.contextmanager
def install_lock() -> Iterator[None]:
    LOCK.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refused("update.busy") from None
        yield
    finally:
        os.close(fd)


def open_staged(state: Path, name: str) -> int:
    """The bundle a request names: a plain name in staged/, no path, no link, a regular file."""
    if not isinstance(name, str) or not BUNDLE_NAME.fullmatch(name) or not name.endswith(".tar"):
        raise Refused("update.format", detail="bundle name not allowed")
    dirfd = os.open(state / "staged", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError as exc:
        raise Refused("update.format", detail=f"cannot open staged/{name} ({exc.strerror})") from None
    finally:
        os.close(dirfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused("update.format", detail="the bundle is not a regular file")
    return fd


def parse_request(raw: bytes) -> dict[str, str]:
    try:
        req = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("update.format", detail="request.json is not JSON") from None
    if not isinstance(req, dict):
        raise Refused("update.format", detail="request.json is not an object")
    rid, bundle, reboot = req.get("id"), req.get("bundle"), req.get("reboot", "now")
    if not isinstance(rid, str) or not re.fullmatch(r"[0-9a-fA-F-]{1,64}", rid):
        raise Refused("update.format", detail="request id")
    if not isinstance(bundle, str) or not BUNDLE_NAME.fullmatch(bundle):
        raise Refused("update.format", detail="bundle name not allowed")
    if reboot != "now" and reboot_time(reboot) is None:
        raise Refused("update.format", detail="reboot must be 'now' or 'at:<UTC ISO time>'")
    return {"id": rid, "bundle": bundle, "reboot": reboot}


def reboot_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.startswith("at:"):
        return None
    try:
        when = dt.datetime.fromisoformat(value[3:].replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo else None


def schedule_reboot(platform_: Platform, reboot: str) -> None:
    argv = platform_.reboot_argv()
    when = reboot_time(reboot)
    subprocess.run(["systemctl", "stop", "mamori-update-reboot.timer"], capture_output=True, timeout=60)
    if when is None or when <= dt.datetime.now(dt.UTC):
        subprocess.run(argv, check=True, timeout=60)
        return
    subprocess.run(
        ["systemd-run", "--quiet", "--unit=mamori-update-reboot", f"--on-calendar={when:%Y-%m-%d %H:%M:%S} UTC",
         "--timer-property=AccuracySec=1s", "--", *[a for a in argv if a != "--no-block"]],
        check=True, timeout=60,
    )  # fmt: skip


def handle_request(installer: Installer) -> int:
    """mamori-update-install.service: one request.json, taken by renaming it, answered by result.json."""
    state = installer.state
    req_path, taken = state / "request.json", state / "request.taken.json"
    try:
        os.rename(req_path, taken)
    except FileNotFoundError:
        return 0
    result: dict[str, Any] = {"id": "", "ok": False, "version": "", "slot": "", "reboot": ""}
    with contextlib.suppress(OSError), open_state_file(state / "progress.jsonl", os.O_TRUNC):
        pass
    try:
        fd = os.open(taken, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO never blocks
        try:
            raw = os.read(fd, 4097)
        finally:
            os.close(fd)
        if len(raw) > 4096:
            raise Refused("update.format", detail="request.json is too large")
        req = parse_request(raw)
        result["id"] = installer.request_id = req["id"]
        result["reboot"] = req["reboot"]
        with install_lock():
            bfd = open_staged(state, req["bundle"])
            try:
                result.update(installer.install(bfd, int(os.environ.get("MAMORI_UPDATE_TRIES", "3"))))
            finally:
                os.close(bfd)
    except Refused as exc:
        result.update(code=exc.code, message_ja=exc.message_ja, message_en=exc.message_en)
        installer.progress("failed", 100, exc.message_ja, exc.message_en)
    except Exception as exc:  # a result must be written whatever broke; the running slot is untouched
        refused = Refused("update.write", detail=f"{type(exc).__name__}: {exc}")
        result.update(code=refused.code, message_ja=refused.message_ja, message_en=refused.message_en)
        installer.progress("failed", 100, refused.message_ja, refused.message_en)
    result["finished_at"] = now_iso()
    atomic_write(state / "result.json", json.dumps(result, ensure_ascii=False) + "\n")
    if not result["ok"]:
        print(
            f"mamori-update: {result['message_ja']}\nmamori-update: {result['message_en']}", file=sys.stderr
        )
        # A refused bundle or request is an answer (result.json), not a broken unit: exit 0, so that
        # mamori-update-install.service does not stay "failed" (the system "degraded") because someone
        # uploaded a wrong file. Only a write that broke (disk, ESP) fails the unit: that needs a person.
        return 1 if result["code"] == "update.write" else 0
    schedule_reboot(installer.platform, result["reboot"])
    return 0


def status(platform_: Platform, state: Path, version_file: Path) -> dict[str, Any]:
    """What docs/update.md calls `mamori-update status --json` (and boot.json)."""
    running = platform_.running_slot()
    other = "b" if running == "a" else "a"
    slots = platform_.slots()
    version = version_file.read_text().strip() if version_file.exists() else None
    fallback = slots.get(other)
    if fallback is None:
        # The spare slot exists but holds no version yet (no update so far): null only without a second slot.
        with contextlib.suppress(Refused, OSError):
            platform_.slot_device(other)
            fallback = {"version": None, "state": "empty"}
    trial = None
    pending = _load_json(state / "pending.json")
    if isinstance(pending, dict) and pending.get("slot") in ("a", "b"):
        target = slots.get(pending["slot"]) or {}
        if pending["slot"] == running:
            outcome = "good" if target.get("state", "good") == "good" else "on-trial"
        elif target.get("state") == "trial":
            outcome = "on-trial"
        else:
            outcome = "rolled-back"
        trial = {"id": pending.get("id", ""), "version": pending.get("version"), "slot": pending["slot"],
                 "outcome": outcome, "tries_left": target.get("tries_left") or 0}  # fmt: skip
    return {
        "running": {"slot": running, "version": version},
        "fallback": {"slot": other, "version": fallback.get("version"), "state": fallback.get("state")}
        if fallback
        else None,
        "trial": trial,
        "at": now_iso(),
    }


def boot_report(platform_: Platform, state: Path, version_file: Path) -> dict[str, Any]:
    """After a healthy boot: a Pi's trial slot becomes the default, then boot.json says what happened.
    An outcome that is final (good or rolled back) ends the pending update."""
    if platform_.mark_good():
        print("mamori-update: the new version passed its health check and is now the default boot")
    report = status(platform_, state, version_file)
    state.mkdir(parents=True, exist_ok=True)
    atomic_write(state / "boot.json", json.dumps(report, ensure_ascii=False) + "\n")
    if report["trial"] and report["trial"]["outcome"] in ("good", "rolled-back"):
        (state / "pending.json").unlink(missing_ok=True)
    return report


def _print_status(report: dict[str, Any]) -> None:
    r = report["running"]
    print(f"running: slot {r['slot']} ({r['version']})")
    if report["fallback"]:
        f = report["fallback"]
        print(f"fallback: slot {f['slot']} ({f['version']}, {f['state']})")
    if report["trial"]:
        t = report["trial"]
        print(f"last update: version {t['version']} in slot {t['slot']}: {t['outcome']}")


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else ""
    try:
        if cmd == "autoboot-text" and len(argv) == 3:
            sys.stdout.write(autoboot_text(int(argv[1]), int(argv[2])))
            return 0
        plat = detect_platform()
        if cmd == "status":
            report = status(plat, STATE, VERSION_FILE)
            print(json.dumps(report, ensure_ascii=False, indent=2)) if "--json" in argv else _print_status(
                report
            )
            return 0
        if cmd == "boot-report":
            _print_status(boot_report(plat, STATE, VERSION_FILE))
            return 0
        if cmd == "persist-machine-id":
            machine_id = Path("/etc/machine-id").read_text().strip()
            if re.fullmatch(r"[0-9a-f]{32}", machine_id) and plat.persist_machine_id(machine_id):
                print(f"mamori-update: machine id {machine_id} kept on the kernel command line")
            return 0
        if cmd == "request":
            return handle_request(Installer(plat))
        if cmd == "install" and len(argv) >= 2:
            with install_lock():
                fd = os.open(argv[1], os.O_RDONLY | os.O_CLOEXEC)
                try:
                    res = Installer(plat).install(fd, int(os.environ.get("MAMORI_UPDATE_TRIES", "3")))
                finally:
                    os.close(fd)
            print(f"mamori-update: {res['message_en']}")
            if "--reboot" in argv:
                subprocess.run(plat.reboot_argv(), check=True, timeout=60)
            return 0
    except Refused as exc:
        print(
            f"mamori-update: {exc.message_ja}\nmamori-update: {exc.code}: {exc.message_en}", file=sys.stderr
        )
        return 1
    print(
        "usage: mamori-update status [--json] | install BUNDLE [--reboot] | request | boot-report",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
