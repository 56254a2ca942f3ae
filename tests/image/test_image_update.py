"""Updates with rollback, in the VM: an update to a deliberately broken version (its daemon cannot start)
is tried once, fails its health check, and the boot loader goes back to the previous version by itself.

The broken bundle is the test image's own root file system with /usr/bin/mamori pointing at /bin/false,
signed with the build's update key (out/keys) and attached to the VM as a read-only disk (/dev/vdb).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OUT, REPO, running_vm, setup_shell
from serialconsole import SerialConsole
from test_image_contents import _extract, _partitions
from vm import VM

pytestmark = pytest.mark.timeout(2400)
log = logging.getLogger(__name__)
MTOOLS = {"MTOOLS_SKIP_CHECK": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _debugfs(fs: Path, *requests: str, write: bool = False) -> str:
    args = ["debugfs", *(["-w"] if write else [])]
    for r in requests:
        args += ["-R", r] if not write else []
    if write:
        script = fs.with_suffix(".cmds")
        script.write_text("\n".join(requests) + "\n")
        args += ["-f", str(script)]
    return subprocess.run([*args, str(fs)], capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def broken_bundle(test_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    parts = _partitions(test_image)
    root = _extract(test_image, parts["mamori-root-a"], tmp / "root.img")
    esp = _extract(test_image, parts["esp"], tmp / "esp.img")
    version = _debugfs(root, "cat /usr/share/mamori/IMAGE_VERSION").strip()
    assert version, "the image records its version"
    _debugfs(root, "rm /usr/bin/mamori", "symlink /usr/bin/mamori /bin/false", write=True)
    assert "/bin/false" in _debugfs(root, "stat /usr/bin/mamori")
    for name in ("vmlinuz", "initrd.img"):
        subprocess.run(
            ["mcopy", "-i", str(esp), f"::/mamori-a/{name}", str(tmp / name)], check=True, env=MTOOLS
        )
    bundle = tmp / "broken.tar"
    subprocess.run(
        [str(REPO / "scripts/image-bundle.sh"), "--root", str(root), "--kernel", str(tmp / "vmlinuz"),
         "--initrd", str(tmp / "initrd.img"), "--version", f"{version}.1", "--key",
         str(OUT / "keys/update-signing.key"), "--out", str(bundle)],
        check=True, timeout=900,
    )  # fmt: skip
    root.unlink()
    return bundle


@pytest.fixture(scope="module")
def update_vm(
    test_image: Path, broken_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VM, SerialConsole]]:
    with running_vm(
        VM(test_image, tmp_path_factory.mktemp("vmupdate"), extra_disks=(broken_bundle,))
    ) as running:
        yield running


def sh(console: SerialConsole, command: str, timeout: float = 300.0) -> str:
    res = console.run(command, timeout=timeout)
    assert res.rc == 0, f"`{command}` failed with {res.rc}:\n{res.out}"
    return res.out


def _slot_partuuid(console: SerialConsole, slot: str) -> str:
    return sh(console, f"blkid -s PARTUUID -o value /dev/disk/by-partlabel/mamori-root-{slot}").strip()


def test_first_boot_added_slot_b_and_the_data_partition(update_vm: tuple[VM, SerialConsole]) -> None:
    _, console = update_vm
    labels = sh(console, "lsblk -nro PARTLABEL /dev/vda").split()
    assert {"esp", "mamori-root-a", "mamori-root-b", "mamori-data"} <= set(labels), labels
    assert sh(console, "findmnt -no SOURCE /var/lib/mamori").strip().startswith("/dev/vda")
    assert "running: slot a" in sh(console, "mamori-update status")


def test_unsigned_bundle_is_refused(update_vm: tuple[VM, SerialConsole]) -> None:
    _, console = update_vm
    sh(console, "mkdir -p /var/lib/mamori/t && cd /var/lib/mamori/t && tar -xf /dev/vdb manifest manifest.sig "
                "&& sed -i 's/^version .*/version 99/' manifest && tar -cf forged.tar manifest manifest.sig")  # fmt: skip
    res = console.run("mamori-update install /var/lib/mamori/t/forged.tar")
    assert res.rc != 0 and "signature" in res.out, res.out
    sh(console, "rm -rf /var/lib/mamori/t")


def test_broken_update_falls_back_to_the_previous_version(update_vm: tuple[VM, SerialConsole]) -> None:
    _, console = update_vm
    slot_a, slot_b = _slot_partuuid(console, "a"), _slot_partuuid(console, "b")
    t0 = time.monotonic()
    out = sh(console, "MAMORI_UPDATE_TRIES=1 mamori-update install /dev/vdb", timeout=900)
    assert "next boot (slot b" in out, out
    log.info("update written to slot b in %.0f s", time.monotonic() - t0)
    console.send("systemctl reboot")
    seen: list[str] = []
    # The broken slot B boots once (its daemon cannot start, the health check reboots), then slot A again.
    for _ in range(3):
        t0 = time.monotonic()
        setup_shell(console)
        root = re.search(r"root=PARTUUID=(\S+)", sh(console, "cat /proc/cmdline")).group(1)
        seen.append("b" if root == slot_b else "a" if root == slot_a else root)
        log.info("booted slot %s in %.0f s (from the reboot to its shell)", seen[-1], time.monotonic() - t0)
        if seen[-1] == "a":
            break
    assert seen[0] == "b" and seen[-1] == "a", f"boots seen after the update: {seen}"
    status = sh(console, "mamori-update status")
    assert "running: slot a" in status and re.search(r"entry mamori-b: .*bad", status), status
    sh(console, "for i in $(seq 1 120); do systemctl is-active -q mamori.service && break; sleep 2; done")
    assert sh(console, "systemctl is-active mamori.service").strip() == "active"
