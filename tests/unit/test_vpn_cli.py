"""`mamori vpn ...` through the real argument parser, against a temporary state directory (no kernel:
the configured WireGuard interface does not exist, so nothing live is touched)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
import yaml

from appliance.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"


@pytest.fixture()
def box(tmp_path, monkeypatch):
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["vpn"]["interface"] = f"wgcli{os.getpid() % 100000}"  # unique, never created here
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    base = ["--config", str(config), "--state-dir", str(tmp_path / "state"), "--author", "院長"]

    def run(*args: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return main([*base, *args]), ""

    return run, tmp_path


def test_add_prints_config_once_and_enrolment(box, capsys):
    run, tmp = box
    assert run("vpn", "add", "yamada", "自宅PC", "--password-stdin", stdin="a-long-password\n")[0] == 0
    out = capsys.readouterr().out
    assert "PrivateKey = " in out and "Endpoint = 203.0.113.2:51820" in out
    assert re.search(r"otpauth://totp/.*secret=[A-Z2-7]+", out)
    assert run("vpn", "users")[0] == 0
    users = capsys.readouterr().out
    assert re.search(r"yamada\s+医師\s+有効\s+devices=1 password=設定済み", users)
    assert re.search(r"vendor-a\s+保守業者\s+有効\s+devices=0 password=未設定", users)
    # the box-made private key is not shown again without re-issuing
    assert run("vpn", "show-config", "yamada", "自宅PC")[0] != 0
    assert "--reissue" in capsys.readouterr().err
    assert run("vpn", "show-config", "yamada", "自宅PC", "--reissue", "--out", str(tmp / "out"))[0] == 0
    capsys.readouterr()
    conf = (tmp / "out" / "yamada-自宅PC.conf").read_text(encoding="utf-8")
    assert (
        "PrivateKey = " in conf and "Address = 10.99.0.3/32" in conf
    )  # a new key and address; the old revoked
    assert (tmp / "out" / "yamada-自宅PC.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp / "out" / "yamada-自宅PC.conf").stat().st_mode & 0o077 == 0


def test_bring_your_own_key_and_show_config(box, capsys):
    run, _ = box
    key = "ZwiGMueot1xuSwtN17gJ5PvMlENvmhTTuN6Ko83hdFQ="
    assert (
        run(
            "vpn",
            "add",
            "vendor-a",
            "laptop",
            "--public-key",
            key,
            "--password-stdin",
            stdin="vendor-password-1\n",
        )[0]
        == 0
    )
    out = capsys.readouterr().out
    assert "# PrivateKey = " in out and "\nPrivateKey" not in out
    assert run("vpn", "show-config", "vendor-a", "laptop")[0] == 0
    assert "AllowedIPs = 10.99.0.0/24, fd4d:616d:6f72::/64, 192.168.10.10/32" in capsys.readouterr().out
    assert run("vpn", "add", "vendor-a", "other", "--public-key", "not-a-key")[0] != 0
    assert "公開鍵の形式" in capsys.readouterr().err


def test_windows_approve_list_cancel_and_refusals(box, capsys):
    run, _ = box
    assert run("vpn", "windows", "--approve", "vendor-a", "--hours", "2", "--reason", "更新作業",
               "--target", "電子カルテ")[0] == 0  # fmt: skip
    assert "時間枠 1 を承認しました" in capsys.readouterr().out
    assert run("vpn", "windows")[0] == 0
    assert re.search(r"1 vendor-a .* 承認中\s+電子カルテ\s+更新作業\s+\(院長\)", capsys.readouterr().out)
    assert (
        run("vpn", "windows", "--approve", "yamada", "--hours", "1", "--reason", "x", "--target", "y")[0] != 0
    )
    assert "保守業者" in capsys.readouterr().err
    assert run("vpn", "windows", "--approve", "vendor-a", "--hours", "1", "--target", "y")[0] != 0
    assert "理由" in capsys.readouterr().err
    assert run("vpn", "windows", "--cancel", "1")[0] == 0
    capsys.readouterr()
    assert run("--lang", "en", "vpn", "windows")[0] == 0
    assert "cancelled" in capsys.readouterr().out


def test_disable_and_enable_are_audited(box, capsys):
    run, _ = box
    assert run("vpn", "add", "yamada", "pc", "--password-stdin", stdin="a-long-password\n")[0] == 0
    assert run("vpn", "disable", "yamada")[0] == 0
    assert "停止し" in capsys.readouterr().out
    assert run("vpn", "disable", "yamada", "--enable")[0] == 0
    assert run("audit", "list", "--search", "vpn.user")[0] == 0
    audit = capsys.readouterr().out
    assert "vpn.user.disable" in audit and "vpn.user.enable" in audit and "院長" in audit
    assert run("vpn", "disable", "nobody")[0] != 0


def test_revoke_device(box, capsys):
    run, _ = box
    assert run("vpn", "add", "yamada", "pc", "--password-stdin", stdin="a-long-password\n")[0] == 0
    assert run("vpn", "revoke", "yamada", "pc")[0] == 0
    assert "無効にしました" in capsys.readouterr().out
    assert run("vpn", "users")[0] == 0
    assert re.search(r"yamada\s+医師\s+有効\s+devices=0", capsys.readouterr().out)
    assert run("vpn", "revoke", "yamada", "pc")[0] == 0  # again: idempotent (finishes a half-done revoke)
    assert run("vpn", "revoke", "yamada", "no-such-device")[0] != 0
    assert run("audit", "list", "--search", "vpn.device")[0] == 0
    assert "vpn.device.revoke" in capsys.readouterr().out
