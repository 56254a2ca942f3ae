"""appliance.child_access: what the web UI's and the portal's accounts may do with the state directory after
`prepare`, tried as those accounts (setpriv, with the groups the daemon starts them with) on a real state
directory whose parents are 0700 (pytest's), with the daemon's action socket bound there: both may connect
to the socket; the web UI may reach and write the database, not remove it, and read its four keys; the
portal may not open the database at all, nor read any key; neither reads another key, lists the key
directory or writes there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import unprivileged
from appliance.accounts import Account
from appliance.actions.server import ActionServer
from appliance.child_access import ChildAccounts, hand_over, lookup_children, prepare
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hands files over to other accounts: needs root")

# Each probe prints "ok" or the error's name, one line per step.
PROBE = """
import os, socket, sqlite3, sys
state = sys.argv[1]
def step(name, fn):
    try:
        fn()
        print(name, "ok")
    except Exception as exc:
        print(name, type(exc).__name__)
def write_db():
    conn = sqlite3.connect(os.path.join(state, "db", "mamori.db"), timeout=10)
    conn.execute("INSERT INTO kv(key, value) VALUES (?, 'x')", (os.environ.get("WHO", "?"),))
    conn.commit()
    conn.close()
def connect_actions():
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.path.join(state, "run", "actions.sock"))
step("connect_actions", connect_actions)
step("write_db", write_db)
step("remove_db", lambda: os.rename(os.path.join(state, "db", "mamori.db"), os.path.join(state, "db", "x")))
step("read_web_key", lambda: open(os.path.join(state, "keys", "web.key"), "rb").read())
step("read_secret", lambda: open(os.path.join(state, "keys", "web_secret.key"), "rb").read())
step("read_other_key", lambda: open(os.path.join(state, "keys", "wg-server.key"), "rb").read())
step("list_keys", lambda: os.listdir(os.path.join(state, "keys")))
step("write_keys", lambda: open(os.path.join(state, "keys", "planted"), "wb").close())
step("rename_keys", lambda: os.rename(os.path.join(state, "keys"), os.path.join(state, "k2")))
"""


def probe(state: Path, account: Account, groups: tuple[int, ...]) -> dict[str, str]:
    argv = unprivileged.command([sys.executable, "-I", "-c", PROBE, str(state)], account, groups)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"WHO": account.user})
    assert done.returncode == 0, done.stderr
    return dict(line.split() for line in done.stdout.splitlines())


@pytest.fixture
def children() -> ChildAccounts:
    found = lookup_children()
    if found is None:
        pytest.skip("no mamori-web/mamori-portal accounts here (`make setup` makes them)")
    return found


def test_each_account_gets_what_it_needs_and_no_more(tmp_path: Path, children: ChildAccounts) -> None:
    paths = Paths(tmp_path / "config.yaml", tmp_path / "deep" / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    for name in ("web.crt", "web.key", "wg-server.key"):
        (paths.keys_dir / name).write_bytes(b"k")
        os.chmod(paths.keys_dir / name, 0o600)
    os.chmod(tmp_path, 0o700)
    with ActionServer(
        Context(paths, db), subsystems=[]
    ).bind():  # listening: a connection waits in its backlog
        web = probe(paths.state_dir, *prepare(paths, "web"))
        portal_account, portal_groups = prepare(paths, "portal")
        assert portal_groups == ()  # not in mamori-db: the daemon answers the portal's questions
        portal = probe(paths.state_dir, portal_account, portal_groups)
    assert web == {"connect_actions": "ok", "write_db": "ok", "remove_db": "PermissionError",
                   "read_web_key": "ok", "read_secret": "ok", "read_other_key": "PermissionError",
                   "list_keys": "PermissionError", "write_keys": "PermissionError",
                   "rename_keys": "PermissionError"}  # fmt: skip
    assert portal == {**web, "write_db": "OperationalError", "read_web_key": "PermissionError",
                      "read_secret": "PermissionError"}  # fmt: skip
    assert {k for k, _ in db.kv_items("mamori-")} == {"mamori-web"}
    assert (paths.keys_dir / "audit.key").stat().st_size == 32  # made by hand_over for the web UI


def test_a_second_hand_over_takes_back_a_wal_file_the_web_ui_made(tmp_path: Path, children) -> None:
    """A -wal left by the web UI's account (it was the first to open the database) becomes root's again,
    which the daemon's unit, without CAP_FOWNER, needs before it may change its mode."""
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    Database(paths.db).migrate()
    hand_over(paths, children)
    wal = Path(f"{paths.db}-wal")
    wal.write_bytes(b"")
    os.chown(wal, children.web.uid, children.web.gid)
    os.chmod(wal, 0o600)
    hand_over(paths, children)
    st = wal.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, children.db_gid, 0o660)


def test_the_web_ui_may_stat_the_installed_rules_and_nothing_else_of_the_ids(
    tmp_path: Path, children
) -> None:
    """ids.web_start: the rules' age on the dashboard is a stat of ids/sources/<source>, under directories the
    daemon's umask made root's alone; the web UI's account may traverse to it, and not list or read."""
    from ids.sources import SOURCE, sources_dir
    from ids.web_start import before_web_start

    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    old = os.umask(0o077)
    try:
        (sources_dir(paths) / SOURCE).mkdir(parents=True)
        (sources_dir(paths) / SOURCE / "a.rules").write_text("alert ip any any -> any any (sid:1;)\n")
    finally:
        os.umask(old)
    before_web_start(Context(paths, Database(paths.db)), children.web)
    code = (
        "import os, sys\n"
        "d = sys.argv[1]\n"
        "print(os.path.isdir(os.path.join(d, sys.argv[2])))\n"
        "for f in (lambda: os.listdir(d), lambda: open(os.path.join(d, sys.argv[2], 'a.rules')).read()):\n"
        "    try:\n"
        "        f()\n"
        "        print('ok')\n"
        "    except PermissionError:\n"
        "        print('refused')\n"
    )
    argv = unprivileged.command(
        [sys.executable, "-I", "-c", code, str(sources_dir(paths)), SOURCE], children.web, ()
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "refused", "refused"], (done.stdout, done.stderr)
