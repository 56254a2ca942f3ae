"""`mamori backup ...` handlers through argparse, with passphrases piped on stdin as a script would."""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.backup import crypto
from appliance.backup.cli import register
from appliance.backup.errors import BackupError, NoPassphraseError, WeakPassphraseError, WrongPassphraseError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context

REPO = Path(__file__).resolve().parents[2]
PASS = "hatsuyume ichi fuji ni taka"


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    shutil.copy(REPO / "examples" / "clinic.yaml", config)
    paths = Paths(config, tmp_path / "state")
    return Context(paths, Database(paths.db))


def run(ctx: Context, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    """Parse like `mamori --lang ... backup ...` does (same global options) and call the handler."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--lang", default="ja")
    parser.add_argument("--author", default="事務長")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return args.func(args, ctx)


def actions(ctx: Context) -> list[str]:
    return [e.action for e in reversed(AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key").search())]


def test_full_cycle(ctx: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(NoPassphraseError):
        run(ctx, monkeypatch, "backup", "create")
    with pytest.raises(WeakPassphraseError):
        run(ctx, monkeypatch, "backup", "set-passphrase", stdin="too short\n")
    assert run(ctx, monkeypatch, "backup", "set-passphrase", stdin=PASS + "\n") == 0
    assert (ctx.paths.keys_dir / "backup.passphrase").read_text() == PASS
    assert PASS not in ctx.paths.config.read_text()
    assert run(ctx, monkeypatch, "backup", "create") == 0
    out = capsys.readouterr().out
    assert "バックアップを作成しました" in out
    archive = next((ctx.paths.state_dir / "backups").glob("*.mbk"))

    assert run(ctx, monkeypatch, "--lang", "en", "backup", "list") == 0
    assert archive.name in capsys.readouterr().out

    assert run(ctx, monkeypatch, "backup", "test", str(archive), stdin=PASS + "\n") == 0
    assert "復元テスト成功" in capsys.readouterr().out
    assert (
        run(ctx, monkeypatch, "--lang", "en", "backup", "test", str(archive), stdin="wrong wrong wrong\n")
        == 3
    )
    assert "wrong passphrase" in capsys.readouterr().out

    usb = tmp_path / "usb"
    usb.mkdir()
    assert run(ctx, monkeypatch, "backup", "export", str(usb)) == 0
    assert (usb / archive.name).read_bytes() == archive.read_bytes()

    assert run(ctx, monkeypatch, "backup", "status") == 0
    assert "最後に成功した復元テスト: 20" in capsys.readouterr().out
    assert actions(ctx) == [
        "backup.set_passphrase",
        "backup.create",
        "backup.test",
        "backup.test",
        "backup.export",
    ]


def test_restore_asks_for_yes_and_records_refusals(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ctx, monkeypatch, "backup", "set-passphrase", stdin=PASS + "\n")
    run(ctx, monkeypatch, "backup", "create")
    archive = next((ctx.paths.state_dir / "backups").glob("*.mbk"))
    key = ctx.paths.keys_dir / "wg-server.key"
    key.write_bytes(b"made after the backup")

    assert run(ctx, monkeypatch, "backup", "restore", "--stored", str(archive)) == 0
    assert "--yes" in capsys.readouterr().out and key.exists()  # only verified, nothing replaced

    with pytest.raises(WrongPassphraseError):
        run(ctx, monkeypatch, "backup", "restore", "--yes", str(archive), stdin="not the passphrase\n")
    assert key.exists() and actions(ctx)[-1] == "backup.restore_refused"

    with pytest.raises(BackupError, match="no passphrase given"):
        run(ctx, monkeypatch, "backup", "restore", "--yes", str(archive), stdin="")

    assert run(ctx, monkeypatch, "backup", "restore", "--yes", str(archive), stdin=PASS + "\n") == 0
    assert "復元しました" in capsys.readouterr().out
    assert not key.exists()  # back to the state of the backup
    assert actions(ctx) == ["backup.set_passphrase", "backup.restore"]
