"""The state database holds password hashes, TOTP secrets and the audit log: it and its -wal and -shm files
are 0660 after a fresh migrate, whatever the umask, with nothing for others (issue 18 item 10; the group is
root's, or on a box `mamori-db`, appliance.child_access), and an older 0644 one is narrowed. An older
version's database at the top of the state directory moves into `db/` with everything in its WAL."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance.paths import Paths
from appliance.storage import Database


@pytest.fixture
def open_umask():
    """The umask of a shell or a unit without UMask=: what made mamori.db 0644 before."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_a_fresh_database_and_its_wal_and_shm_are_0660(tmp_path: Path, open_umask: None) -> None:
    db = Database(tmp_path / "state" / "mamori.db")
    db.migrate()
    with db.connection() as conn:  # while a connection is open, the -wal and -shm files exist
        conn.execute("INSERT INTO kv(key, value) VALUES ('k', 'v')")
        files = [db.path, Path(f"{db.path}-wal"), Path(f"{db.path}-shm")]
        assert all(p.exists() for p in files)
        assert {p.name: mode(p) for p in files} == {p.name: 0o660 for p in files}


def test_a_database_made_0644_by_an_older_version_is_narrowed(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "mamori.db"
    Database(path).migrate()
    path.chmod(0o644)
    Database(path).migrate()
    assert mode(path) == 0o640


def test_a_link_planted_as_the_wal_is_not_followed(tmp_path: Path, open_umask: None) -> None:
    """The web UI's account may create files in `db/`: a link it plants as `-wal` or `-shm`, pointing at a
    file readable by all, must not have the root daemon take that file's bits away (appliance.fileio)."""
    path = tmp_path / "db" / "mamori.db"
    Database(path).migrate()
    path.chmod(0o644)
    outside = tmp_path / "passwd"
    outside.write_text("root:x:0:0\n")
    outside.chmod(0o644)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
        Path(f"{path}{suffix}").symlink_to(outside)
    Database(path)._narrow_modes()
    assert mode(outside) == 0o644  # the target, untouched
    assert mode(path) == 0o640  # the database itself, narrowed as before
    assert Path(f"{path}-wal").is_symlink()


def test_kv_items_match_a_prefix_literally_and_kv_writes_join_a_transaction(tmp_path: Path) -> None:
    """kv is reached through appliance.storage only (test_area_tables): a prefix is text, never a LIKE
    pattern, and a write through a caller's connection is undone with its transaction."""
    db = Database(tmp_path / "m.db")
    db.migrate()
    for key in ("webui.proposal.a", "webui.proposal.b", "webuiXproposal.c", "ids.notify.x"):
        db.set_kv(key, key[-1])
    assert db.kv_items("webui.proposal.") == [("webui.proposal.a", "a"), ("webui.proposal.b", "b")]
    with pytest.raises(RuntimeError), db.transaction() as conn:
        db.set_kv("webui.proposal.a", None, conn)
        assert db.get_kv("webui.proposal.a", conn) is None
        raise RuntimeError("roll back")
    assert db.get_kv("webui.proposal.a") == "a"


def test_an_older_versions_database_moves_into_its_own_directory_with_its_wal(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = Database(state / "mamori.db")  # where versions before the db/ directory kept it
    old.migrate()
    holder = old.connect()  # an open connection keeps the last write in the WAL, not the main file
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        old.set_kv("written", "before the move")
        assert Path(f"{old.path}-wal").stat().st_size > 0
    finally:
        holder.close()
    new = Database(Paths(state_dir=state).db)
    assert new.path == state / "db" / "mamori.db" and new.state_dir == state
    assert new.get_kv("written") == "before the move"
    assert not old.path.exists() and not Path(f"{old.path}-wal").exists()
