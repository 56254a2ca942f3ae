"""Boots a Mamori disk image in qemu (UEFI via OVMF) for tests/image.

Scope: one VM per test module, user-mode networking that forwards only loopback ports into the guest
(nothing else on the host or the internet is reachable from outside), the serial console on a unix socket
and copied to a log file. The image file itself is never written: the VM runs on a qcow2 overlay.

KVM is used when /dev/kvm works; a nested or restricted KVM (as on some CI runners) can open /dev/kvm yet
fail to run OVMF, so a KVM start that errors or prints nothing is retried once with TCG (software).

The q35 chipset's TCO watchdog is wired to reset the machine (`ICH9-LPC.noreboot=false`; qemu 7.2 straps it
off by default): the image arms it (RuntimeWatchdogSec, RebootWatchdogSec), as on the mini PC, so a guest that
hangs, also in the middle of a reboot, comes back by itself as a real box would. A QMP socket lets a test ask
qemu what the guest is doing when the serial console stays silent.

The reset itself stops that watchdog, so nothing covers the firmware. OVMF with two vCPUs hung after a reboot
twice: once under TCG for over 15 minutes (both vCPUs at one RIP range in OVMF's code, no SMM), once in CI
through two QMP `system_reset`s in a row (25 minutes silent since "reboot: Restarting system"); most likely
the wake-up of the second CPU, which OVMF's boot CPU awaits without a timeout (tianocore/edk2 pull request
13164, "Ovmf ap sipi resend"). One vCPU would avoid it, but its one run under TCG was much slower (and lost a
line of the serial stream, which serialconsole.py's reader thread now prevents), so the VM keeps two, and the
VM's firmware watchdog does what a person would do with a real box that stays dark: it pulls the plug. When
the console has been silent for FIRMWARE_SILENCE_S right after the kernel's "Restarting system", it stops qemu
and starts it again on the same disk and the same firmware variables (a cold start; a warm `system_reset` did
not help), at most MAX_FIRMWARE_RESETS times, and says so as a pytest warning (conftest.running_vm): never
silently. The serial console reconnects by itself (serialconsole.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

FIRMWARE_SILENCE_S = 300.0  # OVMF and the kernel's first line take well under 2 minutes under TCG
MAX_FIRMWARE_RESETS = 2
RESTARTING = re.compile(rb"R+e+s+t+a+r+t+i+n+g+ +s+y+s+t+e+m+")  # a loaded TCG serial port repeats bytes

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
        self.qmp_socket = workdir / "qmp.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.accel = ""
        self.firmware_resets: list[str] = []  # when the firmware watchdog power-cycled a silent reboot
        self._watch_stop = threading.Event()
        self._proc_lock = threading.Lock()  # the firmware watchdog's power cycle against stop()

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
            "-global", "ICH9-LPC.noreboot=false",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
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

    def _spawn(self, accel: str, disk: Path) -> None:
        """Starts qemu on `disk` (and the firmware variables in workdir); the serial socket is made anew."""
        self.serial_socket.unlink(missing_ok=True)
        with open(self.workdir / f"qemu-{accel}.err", "ab") as stderr:
            self.proc = subprocess.Popen(
                self.argv(accel, disk), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        self.accel = accel

    def _launch(self, accel: str) -> bool:
        self._spawn(accel, self._prepare_disk())
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
        self._watch_stop.clear()
        threading.Thread(target=self._firmware_watchdog, name="vm-firmware-watchdog", daemon=True).start()

    def firmware_hung(self, now: float) -> bool:
        """The console has said nothing for FIRMWARE_SILENCE_S since the kernel's "Restarting system"."""
        try:
            st = self.serial_log.stat()
        except FileNotFoundError:
            return False
        if now - st.st_mtime < FIRMWARE_SILENCE_S:
            return False
        with open(self.serial_log, "rb") as f:
            f.seek(max(0, st.st_size - 400))
            return RESTARTING.search(f.read()) is not None

    def _firmware_watchdog(self, tick: float = 10.0) -> None:
        while not self._watch_stop.wait(tick):
            if len(self.firmware_resets) >= MAX_FIRMWARE_RESETS or not self.firmware_hung(time.time()):
                continue
            regs = self.monitor("info registers")[:400]
            log.warning("the firmware hung after a reboot (console silent %.0f s); power cycle: %s",
                        FIRMWARE_SILENCE_S, regs)  # fmt: skip
            self.firmware_resets.append(time.strftime("%H:%M:%S"))
            with open(self.serial_log, "ab") as f:  # so that the silence check starts over
                f.write(b"\n[vm.py: firmware silent after a reboot; power cycle]\n")
            self.power_cycle()

    def power_cycle(self) -> None:
        """Stops qemu and starts it again on the same overlay and firmware variables: a cold start."""
        with self._proc_lock:
            if self.proc is None or self._watch_stop.is_set():
                return
            self._kill()
            self._spawn(self.accel, self.workdir / "disk.qcow2")

    def monitor(self, command: str, timeout: float = 10.0) -> str:
        """A human monitor command (`info status`, `info registers`) over QMP; for diagnostics, never raises."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(str(self.qmp_socket))
                f = s.makefile("rwb")
                f.readline()  # the greeting
                replies = []
                for cmd in ({"execute": "qmp_capabilities"},
                            {"execute": "human-monitor-command", "arguments": {"command-line": command}}):  # fmt: skip
                    f.write(json.dumps(cmd).encode() + b"\n")
                    f.flush()
                    while True:  # skip asynchronous events
                        reply = json.loads(f.readline())
                        if "event" not in reply:
                            replies.append(reply)
                            break
                return str(replies[-1].get("return", replies[-1]))
        except (OSError, ValueError) as exc:
            return f"(no answer from qemu's monitor: {exc})"

    def stop(self) -> None:
        self._watch_stop.set()
        with self._proc_lock:
            self._kill()

    def _kill(self) -> None:
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
