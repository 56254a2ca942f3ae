"""`mamori backup ...` handlers through argparse, with passphrases piped on stdin as a script would."""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.backup import crypto
from appliance.backup.cli import register
from appliance.backup.errors import BackupError, NoPassphraseError, WeakPassphraseError, WrongPassphraseError
from appliance.backup.ports import PortMapError, PortMismatchError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.waiting import wait_for, wait_or_fail

REPO = Path(__file__).resolve().parents[2]
PASS = "hatsuyume ichi fuji ni taka"


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


BOX_PORTS = ["wan0", "lan0", "guest0", "dev0"]


@pytest.fixture(autouse=True)
def box_ports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ports of the box the CLI runs on (this machine has none of the example's; the integration test
    reads real ones). A test of other hardware changes the list in place."""
    ports = list(BOX_PORTS)
    monkeypatch.setattr("appliance.backup.ports.detect_ports", lambda: list(ports))
    return ports


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
    assert "のバックアップを復元し、設定を反映しました" in capsys.readouterr().out
    assert not key.exists()  # back to the state of the backup
    assert actions(ctx) == ["backup.set_passphrase", "backup.restore"]


def files(ctx: Context) -> dict[str, bytes]:
    out = {"CONFIG": ctx.paths.config.read_bytes()}
    out.update({str(p): p.read_bytes() for p in sorted(ctx.paths.state_dir.rglob("*")) if p.is_file()})
    return out


def test_restore_onto_other_ports_needs_a_mapping_and_shows_it(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], box_ports: list[str]
) -> None:
    run(ctx, monkeypatch, "backup", "set-passphrase", stdin=PASS + "\n")
    run(ctx, monkeypatch, "backup", "create")
    archive = str(next((ctx.paths.state_dir / "backups").glob("*.mbk")))
    box_ports[:] = ["enp1s0", "enp2s0", "enp3s0", "enp4s0"]  # the spare is a mini PC
    capsys.readouterr()
    before = files(ctx)
    with pytest.raises(PortMismatchError) as caught:
        run(ctx, monkeypatch, "backup", "restore", "--yes", archive, stdin=PASS + "\n")
    assert "この機械のポート: enp1s0, enp2s0, enp3s0, enp4s0" in caught.value.text("ja")
    with pytest.raises(PortMapError, match="enp9s0"):
        run(ctx, monkeypatch, "backup", "restore", "--yes", "--ports", "wan0=enp1s0,lan0=enp2s0,guest0=enp3s0,"
            "dev0=enp9s0", archive, stdin=PASS + "\n")  # fmt: skip
    with pytest.raises(PortMapError, match="old=new"):  # a typo is refused before the passphrase is asked
        run(ctx, monkeypatch, "--lang", "en", "backup", "restore", "--yes", "--ports", "wan0:enp1s0", archive)
    assert files(ctx) == before  # refused three times, nothing written

    mapping = "wan0=enp1s0,lan0=enp2s0,guest0=enp3s0,dev0=enp4s0"
    assert run(ctx, monkeypatch, "backup", "restore", "--ports", mapping, archive, stdin=PASS + "\n") == 0
    out = capsys.readouterr().out
    assert "+- name: enp1s0" in out and f"--yes --ports {mapping}" in out
    assert files(ctx)["CONFIG"] == before["CONFIG"]  # shown, not done

    # Done with --yes by the integration test (tests/integration/test_core_restore.py): on real ports, since
    # the restored config is applied to the kernel at once.


def test_a_running_daemon_is_told_to_reload_a_stale_pid_file_is_not(tmp_path: Path) -> None:
    """Only the process holding run/mamori.lock is the daemon (appliance.daemonlock): a pid file whose
    number now belongs to another process (after a crash) is never signalled."""
    from appliance.backup.api import reload_running_daemon

    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    code = "import fcntl,signal,sys,time\n" \
           "lock = open(sys.argv[3], 'a')\nif sys.argv[2] == 'daemon': fcntl.flock(lock, fcntl.LOCK_EX)\n" \
           "signal.signal(signal.SIGHUP, lambda *a: open(sys.argv[1], 'w').write('hup'))\n" \
           "print('ready', flush=True)\ntime.sleep(600)"  # fmt: skip
    for name, told in (("daemon", True), ("a-stranger-with-a-reused-pid", False)):
        got = tmp_path / f"hup-{name}"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(got), name, str(paths.run_dir / "mamori.lock")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            (paths.run_dir / "mamori.pid").write_text(f"{proc.pid}\n")
            assert reload_running_daemon(paths) is told
            if told:  # a long bound (CI runs this at nice 19 beside the integration tests), ended by the file
                wait_or_fail(got.exists, 60, "the daemon's SIGHUP handler wrote its file")
            else:
                assert not wait_for(got.exists, timeout=0.5), "a process not holding the lock was signalled"
        finally:
            proc.kill()
            proc.wait()
    (paths.run_dir / "mamori.pid").unlink()
    assert reload_running_daemon(paths) is False
