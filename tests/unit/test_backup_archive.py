"""What goes into a backup and what stays out, decided on a real state directory."""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

import pytest

from appliance.backup.archive import build_manifest
from appliance.paths import Paths

REPO = Path(__file__).resolve().parents[2]


def staging(tmp_path: Path) -> Path:
    (tmp_path / "staging").mkdir(mode=0o700, exist_ok=True)
    return tmp_path / "staging"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "config.yaml", tmp_path / "state")
    p.ensure()
    p.config.write_text((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("relpath", "included"),
    [
        ("keys/wg-server.key", True),
        ("keys/audit.key", True),
        ("tls/cert.pem", True),
        ("tls/key.pem", True),
        ("reports/2026-10.pdf", True),
        ("ids/rules/local.rules", True),
        ("run/dnsmasq.conf", False),
        ("run/wireguard-go-wg0.pid", False),
        ("cache/et-open.tar.gz", False),
        ("backups/mamori-backup-20261125-030000.mbk", False),
        ("apply.lock", False),
        ("mamori.db-wal", False),
        ("mamori.db-shm", False),
        ("keys/.wg-server.key.abc.tmp", False),
        ("ids/run/ok.txt", True),  # only the top-level run/ is transient
        ("ids/sources/et-open/emerging-scan.rules", True),
        ("ids/suricata-update/data/rules.tar.gz", False),
    ],
)
def test_inclusion(paths: Paths, tmp_path: Path, relpath: str, included: bool) -> None:
    target = paths.state_dir / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"content of " + relpath.encode())
    manifest = build_manifest(paths, staging(tmp_path), set(), 1_764_100_000.0)
    names = {f.path for f in manifest.files}
    assert (f"state/{relpath}" in names) is included
    if included:
        assert (tmp_path / "staging" / "state" / relpath).read_bytes() == target.read_bytes()


def test_config_and_metadata(paths: Paths, tmp_path: Path) -> None:
    manifest = build_manifest(paths, staging(tmp_path), set(), 1_764_100_000.0)
    config = manifest.by_path()["config.yaml"]
    assert config.size == paths.config.stat().st_size and len(config.sha256) == 64
    assert manifest.clinic and manifest.software_version and manifest.created.startswith("2025-11-25")
    assert manifest.dirs["state/keys"] == 0o700


def test_symlinks_sockets_and_configured_dir_are_skipped_and_listed(paths: Paths, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not state")
    (paths.state_dir / "link-to-dir").symlink_to(outside)
    (paths.state_dir / "link-to-file").symlink_to(outside / "secret")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(paths.state_dir / "ctl"))
    nas = paths.state_dir / "nas"
    nas.mkdir()
    (nas / "big.mbk").write_bytes(b"an archive")
    try:
        manifest = build_manifest(paths, staging(tmp_path), {nas}, 1_764_100_000.0)
    finally:
        sock.close()
    names = {f.path for f in manifest.files}
    assert not any("secret" in n or "nas" in n or n.endswith("ctl") for n in names)
    assert sorted(manifest.skipped) == ["state/ctl", "state/link-to-dir", "state/link-to-file"]


def test_every_sqlite_database_is_snapshotted_with_its_wal(paths: Paths, tmp_path: Path) -> None:
    db = paths.state_dir / "ids" / "extra.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)])
    try:
        assert os.path.getsize(f"{db}-wal") > 0
        build_manifest(paths, staging(tmp_path), set(), 1_764_100_000.0)
    finally:
        conn.close()
    copy = sqlite3.connect(tmp_path / "staging" / "state" / "ids" / "extra.db")
    try:
        assert copy.execute("SELECT COUNT(*), SUM(x) FROM t").fetchone() == (500, sum(range(500)))
    finally:
        copy.close()
