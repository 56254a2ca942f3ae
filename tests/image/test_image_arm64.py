"""The arm64 (Raspberry Pi) root file system under qemu-user: Mamori's CLI runs with the image's own arm64
Python and validates the example configuration; a broken configuration is refused with a Japanese message.

Runs when `make image` (IMAGE_ARCHES containing arm64) left out/build/arm64/rootfs; skipped otherwise.
"""

from __future__ import annotations

import subprocess
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
