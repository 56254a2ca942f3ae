"""The production amd64 image, read without booting it (sfdisk, debugfs, mtools): nothing unique or secret
baked in, no test hook, no default password, the fail-closed policy installed and enabled, sizes in budget.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def _partitions(image: Path) -> dict[str, dict]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True, timeout=30).stdout)["partitiontable"]  # fmt: skip
    assert table["label"] == "gpt"
    return {p["name"]: p for p in table["partitions"]}


def _extract(image: Path, part: dict, dest: Path) -> Path:
    subprocess.run(["dd", f"if={image}", f"of={dest}", "bs=512", f"skip={part['start']}", f"count={part['size']}",
                    "conv=sparse", "status=none"], check=True, timeout=300)  # fmt: skip
    return dest


@pytest.fixture(scope="module")
def parts(prod_image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("parts")
    table = _partitions(prod_image)
    assert set(table) == {"esp", "mamori-root-a"}, table
    return {name: _extract(prod_image, part, tmp / f"{name}.img") for name, part in table.items()}


def debugfs(fs: Path, request: str) -> str:
    res = subprocess.run(["debugfs", "-R", request, str(fs)], capture_output=True, text=True, timeout=60)
    return res.stdout


def test_esp_boots_systemd_boot_with_locked_editor(parts: dict[str, Path]) -> None:
    esp = str(parts["esp"])
    listing = subprocess.run(["mdir", "-i", esp, "-/", "::/"], capture_output=True, text=True, timeout=30,
                             env={"MTOOLS_SKIP_CHECK": "1"}).stdout  # fmt: skip
    assert "BOOTX64" in listing and "vmlinuz" in listing and "initrd" in listing
    loader = subprocess.run(["mtype", "-i", esp, "::/loader/loader.conf"], capture_output=True, text=True,
                            timeout=30, env={"MTOOLS_SKIP_CHECK": "1"}).stdout  # fmt: skip
    assert "editor no" in loader
    entry = subprocess.run(["mtype", "-i", esp, "::/loader/entries/mamori-a.conf"], capture_output=True, text=True,
                           timeout=30, env={"MTOOLS_SKIP_CHECK": "1"}).stdout  # fmt: skip
    assert "root=PARTUUID=" in entry and "autologin" not in entry
    assert " ro " in entry and " rw " not in entry, "the root file system is mounted read-only"


def test_nothing_unique_or_secret_in_the_image(parts: dict[str, Path]) -> None:
    root = parts["mamori-root-a"]
    assert "ssh_host_" not in debugfs(root, "ls -l /etc/ssh")
    assert "web.key" not in debugfs(root, "ls -l /var/lib/mamori")
    assert debugfs(root, "cat /etc/machine-id").strip() == ""
    shadow = debugfs(root, "cat /etc/shadow")
    root_hash = next(line.split(":")[1] for line in shadow.splitlines() if line.startswith("root:"))
    assert root_hash.startswith(("!", "*")), "root must have no password in the production image"


def test_the_box_resolves_through_its_own_dnsmasq(parts: dict[str, Path]) -> None:
    """Not through the build host's resolver, which mmdebstrap copies in for the build."""
    resolv = debugfs(parts["mamori-root-a"], "cat /etc/resolv.conf")
    assert [line.split() for line in resolv.splitlines() if line and not line.startswith("#")] == [
        ["nameserver", "127.0.0.1"]
    ], resolv


def test_no_test_hook_in_the_production_image(parts: dict[str, Path]) -> None:
    root = parts["mamori-root-a"]
    assert (
        "File not found" in debugfs(root, "stat /etc/mamori-test-image")
        or not debugfs(root, "cat /etc/mamori-test-image").strip()
    )
    assert "serial-getty@ttyS0.service.d" not in debugfs(root, "ls -l /etc/systemd/system")
    assert "mamori-test-snapshot" not in debugfs(root, "ls -l /etc/systemd/system/sysinit.target.wants")


def test_fail_closed_policy_installed_and_enabled(parts: dict[str, Path]) -> None:
    root = parts["mamori-root-a"]
    shipped = debugfs(root, "cat /usr/lib/mamori/fail-closed.nft")
    assert shipped == (REPO / "image/nftables/fail-closed.nft").read_text()
    assert "mamori-fail-closed.service" in debugfs(root, "ls -l /etc/systemd/system/sysinit.target.wants")
    wants = debugfs(root, "ls -l /etc/systemd/system/multi-user.target.wants")
    assert "mamori.service" in wants and "mamori-firstboot.service" in wants
    assert "mamori-setup-code.service" in wants
    # The gettys print the setup-code banner from /run/issue.d (made at boot, never in the image).
    for getty in ("getty@", "serial-getty@"):
        dropin = debugfs(root, f"cat /usr/lib/systemd/system/{getty}.service.d/10-mamori-issue.conf")
        assert "--issue-file /etc/issue:/etc/issue.d:/run/issue.d" in dropin, getty
    assert "setup-code" not in debugfs(root, "ls -l /var/lib/mamori")
    for stock in (
        "ssh.service",
        "dnsmasq.service",
        "suricata.service",
        "chrony.service",
        "mamori-webui.service",
    ):
        assert stock not in wants, f"{stock} must not start by itself: Mamori runs it"
    assert "gcc" not in debugfs(root, "ls -l /usr/bin")


def test_read_only_root_and_update_units(parts: dict[str, Path]) -> None:
    root = parts["mamori-root-a"]
    fstab = debugfs(root, "cat /etc/fstab")
    for target in ("/var/lib/mamori", "/var/log", "/var/lib/systemd", "/etc/mamori", "/tmp", "/var/tmp"):
        assert f" {target} " in fstab, target
    assert not any(line.split()[1:2] == ["/"] for line in fstab.splitlines() if line and line[0] != "#")
    assert "mamori-update-install.path" in debugfs(root, "ls -l /etc/systemd/system/multi-user.target.wants")
    timers = debugfs(root, "ls -l /etc/systemd/system/timers.target.wants")
    assert "apt-daily" not in timers and "dpkg-db-backup" not in timers, "nothing writes the read-only root"
    assert "mamori_update.py" in debugfs(root, "ls -l /usr/lib/mamori")
    assert debugfs(root, "cat /usr/share/mamori/update-keys/vendor.pem").startswith("-----BEGIN PUBLIC KEY")


def test_image_sizes_within_budget(prod_image: Path) -> None:
    raw = prod_image.stat().st_size
    assert raw <= GIB, f"raw image {raw / GIB:.2f} GiB > 1 GiB"
    packed = prod_image.with_suffix(".img.zst")
    if packed.exists():
        assert packed.stat().st_size <= 400 * (1 << 20)
