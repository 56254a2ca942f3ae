"""tests/image: boots the built disk image in qemu. Not part of `make test` (a boot under software
emulation takes minutes); `make image-test` runs it with MAMORI_IMAGE_TEST=1 after `make image`."""

from __future__ import annotations

import os
import shutil
import sys
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


@contextmanager
def running_vm(vm: VM) -> Iterator[tuple[VM, SerialConsole]]:
    """Boots `vm` to its autologin shell; always stops it (and keeps the serial log if asked)."""
    console = None
    try:
        vm.start()
        console = SerialConsole(str(vm.serial_socket))
        setup_shell(console)
        yield vm, console
    finally:
        if console is not None:
            console.close()
        vm.stop()
        keep = os.environ.get("MAMORI_VM_KEEP_LOG")
        if keep and vm.serial_log.exists():
            shutil.copyfile(vm.serial_log, keep)


@pytest.fixture(scope="module")
def booted(test_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VM, SerialConsole]]:
    with running_vm(VM(test_image, tmp_path_factory.mktemp("vm"))) as running:
        yield running
