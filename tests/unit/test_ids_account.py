"""Suricata's account: the command line drops to it, its directories are opened to it and no further, and
without the account Suricata runs as root and the daemon says so once. (The running process's uid and
capabilities: tests/integration/test_ids_reload.py.)"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ids import account, supervisor
from ids.account import IdsAccount, can_traverse, lookup, prepare
from ids.render import SuricataPaths, suricata_argv

ACCOUNT = lookup()
needs_account = pytest.mark.skipif(
    ACCOUNT is None or os.geteuid() != 0, reason="needs root and the mamori-ids account (make setup)"
)


@pytest.mark.parametrize(
    ("user", "group", "expect"),
    [
        ("mamori-ids", "mamori-ids", ["--user", "mamori-ids", "--group", "mamori-ids"]),
        ("mamori-ids", None, ["--user", "mamori-ids", "--group", "mamori-ids"]),
        (None, None, []),
    ],
)
def test_argv_drops_to_the_account_when_there_is_one(user, group, expect) -> None:
    live = SuricataPaths(Path("/var/lib/mamori/run/suricata"))
    argv = suricata_argv("/usr/bin/suricata", live, user, group)
    assert argv[:9] == ["/usr/bin/suricata", "-c", str(live.yaml), "--af-packet", "-l", str(live.log_dir),
                        "--pidfile", str(live.pidfile), "-k"]  # fmt: skip
    assert argv[10:] == expect
    assert ("--user" in argv) == (user is not None)


def test_socket_has_its_own_directory_and_the_pid_file_does_not() -> None:
    live = SuricataPaths(Path("/x/run/suricata"))
    assert live.socket.parent == live.control_dir != live.base
    assert live.pidfile.parent == live.base  # written while Suricata is root: not in a directory it writes
    # opened by the root supervisor for Suricata's output: a link planted in log/ must not redirect it
    assert live.console_log.parent == live.base != live.log_dir


def test_no_account_is_none_and_logged_once(monkeypatch, caplog) -> None:
    assert lookup("mamori-no-such-account") is None
    monkeypatch.setattr(account, "IDS_ACCOUNT", "mamori-no-such-account")
    monkeypatch.setattr(supervisor, "_LOGGED_NO_ACCOUNT", False)
    with caplog.at_level(logging.WARNING, logger="ids.supervisor"):
        assert supervisor._account() is None and supervisor._account() is None
    assert [r.getMessage() for r in caplog.records] == [
        "no mamori-no-such-account account on this machine (make setup creates it): Suricata runs as root"
    ]


def test_prepare_without_account_only_makes_the_directories(tmp_path: Path) -> None:
    live = SuricataPaths.under(tmp_path / "run")
    prepare(live, None)
    assert all(d.is_dir() for d in (live.base, live.rules.parent, live.log_dir, live.control_dir))
    assert live.base.stat().st_gid == os.getegid()


@pytest.fixture
def private_root():
    """A 0700 directory straight under /tmp (not pytest's: a concurrent pytest run chmods that)."""
    path = Path(tempfile.mkdtemp(prefix="mamori-ids-account-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_account(acct: IdsAccount, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", code, *args], user=acct.uid, group=acct.gid,
                          extra_groups=[], capture_output=True, text=True, check=False, timeout=30)  # fmt: skip


READ = "import sys; open(sys.argv[1]).read()"
WRITE = "import sys; open(sys.argv[1], 'w').write('x')"


@needs_account
def test_prepare_opens_what_suricata_needs_and_nothing_more(private_root: Path) -> None:
    assert ACCOUNT is not None
    state = private_root / "state"
    (state / "run").mkdir(parents=True, mode=0o700)
    (state / "mamori.db").write_text("secret")
    os.chmod(state / "mamori.db", 0o600)  # as the daemon (UMask=0077) makes it
    os.chmod(state, 0o750)
    live = SuricataPaths.under(state / "run")
    live.rules.parent.mkdir(parents=True)
    live.log_dir.mkdir()
    for f in (live.yaml, live.rules):
        f.write_text("x")
        os.chmod(f, 0o644)
    live.eve.write_text("{}\n")  # left by a Suricata that ran as root
    assert not can_traverse(state, ACCOUNT) and as_account(ACCOUNT, READ, str(live.rules)).returncode != 0

    prepare(live, ACCOUNT)

    assert all(can_traverse(d, ACCOUNT) for d in (private_root, state, state / "run"))
    assert as_account(ACCOUNT, READ, str(live.rules)).returncode == 0  # rules (reload-rules)
    assert as_account(ACCOUNT, READ, str(live.yaml)).returncode == 0
    assert as_account(ACCOUNT, WRITE, str(live.log_dir / "eve.json.new")).returncode == 0  # after rotation
    assert as_account(ACCOUNT, WRITE, str(live.control_dir / "sock")).returncode == 0
    assert live.eve.stat().st_uid == ACCOUNT.uid  # it appends to its old EVE file
    # ... and no more: not its YAML, not its base directory, not the rest of the state directory.
    for target in (live.yaml, live.base / "new.yaml", live.rules, state / "other", state / "run" / "x"):
        assert as_account(ACCOUNT, WRITE, str(target)).returncode != 0, target
    assert as_account(ACCOUNT, READ, str(state / "mamori.db")).returncode != 0
    assert as_account(ACCOUNT, "import os, sys; os.listdir(sys.argv[1])", str(state)).returncode != 0
    assert (state.stat().st_mode & 0o7777, state.stat().st_uid, state.stat().st_gid) == (0o750, 0, 0)

    # systemd's StateDirectoryMode= chmod at every start keeps the grant; prepare twice changes nothing.
    os.chmod(state, 0o750)
    assert can_traverse(state, ACCOUNT)
    before = os.getxattr(state, "system.posix_acl_access")
    prepare(live, ACCOUNT)
    assert os.getxattr(state, "system.posix_acl_access") == before
