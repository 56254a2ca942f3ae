"""tests/image: boots the built disk image in qemu. Not part of `make test` (a boot under software
emulation takes minutes); `make image-test` runs it with MAMORI_IMAGE_TEST=1 after `make image`."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serialconsole import SerialConsole
from vm import VM

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("MAMORI_IMAGE_OUT", REPO / "out"))

if not os.environ.get("MAMORI_IMAGE_TEST"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def test_image() -> Path:
    image = OUT / "mamori-amd64-test.img"
    if not image.exists():
        pytest.fail(f"{image} is missing: run `make image` first")
    return image


@pytest.fixture(scope="session")
def prod_image() -> Path:
    image = OUT / "mamori-amd64.img"
    if not image.exists():
        pytest.fail(f"{image} is missing: run `make image` first")
    return image


def setup_shell(console: SerialConsole, login_seen: bool = False) -> None:
    """Waits for the next autologin shell of the test image (one per boot) and makes it quiet and predictable."""
    if not login_seen:
        console.wait_for("(automatic login)", timeout=float(os.environ.get("MAMORI_VM_BOOT_TIMEOUT", "900")))
    console.wait_for("root@mamori", timeout=120)
    console.send("")
    res = console.run(
        "dmesg -n 1; stty -echo cols 400; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb PS1='# '"
    )
    assert res.rc == 0, res.out


def assert_no_worker_crashed(console: SerialConsole) -> None:
    """No worker of the daemon crashed in this boot (appliance.daemon logs "crashed; restarting" and the
    traceback). The daemon restarts a crashed worker, so a worker that always fails on the real image (a
    capability or a permission the lab, running as root, never lacks) would otherwise go unseen."""
    res = console.run(
        "journalctl -b -u mamori.service -o cat --no-pager | grep -E -A 12 'crashed; restarting|Traceback' | head -60",
        timeout=120,
    )
    assert res.out.strip() == "", "a worker of the daemon crashed:\n" + res.out


@contextmanager
def running_vm(vm: VM) -> Iterator[tuple[VM, SerialConsole]]:
    """Boots `vm` to its autologin shell; always stops it (and keeps the serial log if asked)."""
    console = None
    try:
        vm.start()
        console = SerialConsole(str(vm.serial_socket), reconnect_s=120.0)
        setup_shell(console)
        yield vm, console
    finally:
        if console is not None:
            console.close()
        vm.stop()
        if vm.firmware_resets:
            warnings.warn(f"the VM's firmware hung after a reboot and was power-cycled at {', '.join(vm.firmware_resets)} "
                          "(vm.py, firmware watchdog)", stacklevel=1)  # fmt: skip
        keep = os.environ.get("MAMORI_VM_KEEP_LOG")
        if keep and vm.serial_log.exists():
            shutil.copyfile(vm.serial_log, keep)


@pytest.fixture(scope="session")
def bundles(test_image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from bundlekit import make_bundles  # bundlekit reads OUT and REPO from here

    return make_bundles(test_image, tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="session")
def box(
    test_image: Path, bundles: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VM, SerialConsole]]:
    """One VM of the test image for test_image_boot and then test_image_update: a boot under software
    emulation takes minutes, so the first boot's checks and the updates share it. The update bundles are
    attached from the start as read-only disks (/dev/vdb v2, /dev/vdc v3, /dev/vdd the build's v1)."""
    disks = (bundles["v2"], bundles["v3"], bundles["old"])
    with running_vm(VM(test_image, tmp_path_factory.mktemp("vm"), extra_disks=disks)) as running:
        yield running


@pytest.fixture(scope="session")
def booted(box: tuple[VM, SerialConsole]) -> tuple[VM, SerialConsole]:
    """The box as first booted (test_image_boot runs before test_image_update)."""
    return box


@pytest.fixture(scope="session")
def update_vm(box: tuple[VM, SerialConsole]) -> tuple[VM, SerialConsole]:
    """The same box, once test_image_boot has configured it (SSH on, one rule): updates keep its data."""
    return box
