"""Boots a Mamori disk image in qemu (UEFI via OVMF) for tests/image.

Scope: one VM per test module, user-mode networking that forwards only loopback ports into the guest
(nothing else on the host or the internet is reachable from outside), the serial console on a unix socket
and copied to a log file. The image file itself is never written: the VM runs on a qcow2 overlay.

KVM is used when /dev/kvm works; a nested or restricted KVM (as on some CI runners) can open /dev/kvm yet
fail to run OVMF, so a KVM start that errors or prints nothing is retried once with TCG (software).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
KVM_FAILURE_MARKS = ("KVM internal error", "failed to set MSR", "emulation failure", "Could not access KVM")


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kvm_usable() -> bool:
    if os.environ.get("MAMORI_VM_ACCEL") == "tcg":
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


class VM:
    """A running qemu. `start()` returns once the guest's firmware or kernel has printed something."""

    def __init__(
        self,
        image: Path,
        workdir: Path,
        disk_size: str = "4G",
        memory_mb: int = 1024,
        extra_disks: tuple[Path, ...] = (),
    ) -> None:
        self.image = image
        self.extra_disks = extra_disks
        self.workdir = workdir
        self.disk_size = disk_size
        self.memory_mb = memory_mb
        self.https_port = free_loopback_port()
        self.serial_socket = workdir / "serial.sock"
        self.serial_log = workdir / "serial.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.accel = ""

    def _prepare_disk(self) -> Path:
        overlay = self.workdir / "disk.qcow2"
        overlay.unlink(missing_ok=True)
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.image), "-F", "raw", str(overlay), self.disk_size],
            check=True, timeout=60,
        )  # fmt: skip
        shutil.copyfile(OVMF_VARS, self.workdir / "vars.fd")
        return overlay

    def argv(self, accel: str, disk: Path) -> list[str]:
        cpu = "host" if accel == "kvm" else "max"
        fwd = f"hostfwd=tcp:127.0.0.1:{self.https_port}-:443"
        return [
            "qemu-system-x86_64", "-machine", f"q35,accel={accel}", "-cpu", cpu, "-smp", "2",
            "-m", str(self.memory_mb), "-display", "none", "-monitor", "none", "-nodefaults",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={self.workdir / 'vars.fd'}",
            "-drive", f"file={disk},if=virtio,format=qcow2",
            # enp0s3: the port the setup wizard is reached on; enp0s4: a second, isolated port (restrict=on).
            "-netdev", f"user,id=n0,{fwd}", "-device", "virtio-net-pci,netdev=n0,addr=0x3",
            "-netdev", "user,id=n1,restrict=on,net=10.0.3.0/24", "-device", "virtio-net-pci,netdev=n1,addr=0x4",
            *[arg for d in self.extra_disks for arg in ("-drive", f"file={d},if=virtio,format=raw,readonly=on")],
            "-device", "virtio-rng-pci",
            "-chardev", f"socket,id=ser0,path={self.serial_socket},server=on,wait=off,logfile={self.serial_log},logappend=on",
            "-serial", "chardev:ser0",
        ]  # fmt: skip

    def _launch(self, accel: str) -> bool:
        disk = self._prepare_disk()
        self.serial_socket.unlink(missing_ok=True)
        with open(self.workdir / f"qemu-{accel}.err", "wb") as stderr:
            self.proc = subprocess.Popen(
                self.argv(accel, disk), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        self.accel = accel
        if accel != "kvm":
            return True
        # A broken KVM shows within seconds: an error from qemu, or no output from the guest at all.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            err = (self.workdir / "qemu-kvm.err").read_text(errors="replace")
            if self.proc.poll() is not None or any(mark in err for mark in KVM_FAILURE_MARKS):
                log.warning("KVM cannot run this guest here (%s); using TCG", err.strip()[:200])
                self.stop()
                return False
            if self.serial_log.exists() and b"Linux version" in self.serial_log.read_bytes():
                return True
            time.sleep(1)
        log.warning("no kernel output under KVM within 30 s; using TCG")
        self.stop()
        return False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (kvm_usable() and self._launch("kvm")):
            self._launch("tcg")
        log.info("VM started with %s; HTTPS on 127.0.0.1:%d", self.accel, self.https_port)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.proc = None
