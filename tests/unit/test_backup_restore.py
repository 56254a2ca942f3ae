"""Backup -> wipe -> restore gives the same box; every refused or failed restore leaves it exactly as it was.

A real SQLite database in WAL mode with rows in the core tables (revisions, audit chain, kv) and a table
with BLOBs, real key files with their modes, and the example config. No mocks, except one injected
failure at the last step of the swap.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.backup import api, crypto, ports, restore
from appliance.backup.crypto import EncryptingWriter, decrypt_stream
from appliance.backup.errors import BackupError, CorruptArchiveError, RestoreError, WrongPassphraseError
from appliance.backup.records import backup_status
from appliance.child_access import lookup_children
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context

REPO = Path(__file__).resolve().parents[2]
PASS = "tsukue no ue ni ringo ga mittsu"
EXAMPLE_PORTS = ("wan0", "lan0", "guest0", "dev0")
MINI_PC = ("enp1s0", "enp2s0", "enp3s0", "enp4s0")


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


@pytest.fixture(autouse=True)
def example_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has none of the example's ports; the tests of other hardware name the box's ports
    explicitly (box_ports=), and tests/integration/test_core_restore.py reads real ones from the kernel."""
    monkeypatch.setattr(ports, "detect_ports", lambda: list(EXAMPLE_PORTS))


def make_box(root: Path) -> Context:
    """A box with real data: revisions, an audit chain, kv, BLOB rows, WireGuard/TLS keys, run files."""
    config = root / "etc" / "config.yaml"
    config.parent.mkdir(parents=True)
    shutil.copy(REPO / "examples" / "clinic.yaml", config)
    config.chmod(0o640)
    paths = Paths(config, root / "var" / "mamori")
    paths.ensure()
    ctx = Context(paths, Database(paths.db))
    ctx.db.migrate()
    with ctx.db.transaction() as conn:
        for i in range(3):
            conn.execute(
                "INSERT INTO revisions(created_at, author, source, comment, config_text, sha256, status)"
                " VALUES (?, ?, 'cli', ?, ?, ?, 'applied')",
                (1_700_000_000.5 + i, "院長", f"変更 {i}", config.read_text(), f"{i:064x}"),
            )
        conn.execute("CREATE TABLE clinic_data (id INTEGER PRIMARY KEY, name TEXT, blob BLOB, amount REAL)")
        conn.executemany("INSERT INTO clinic_data(name, blob, amount) VALUES (?, ?, ?)",
                         [(f"患者{i}", os.urandom(64), i / 3) for i in range(200)])  # fmt: skip
        conn.execute("INSERT INTO kv(key, value) VALUES ('setup_done', '1')")
    audit = AuditLog(ctx.db, paths.keys_dir / "audit.key")
    for i in range(5):
        audit.record("admin", "config.apply", {"revision": i}, "web", "192.168.10.20")
    (paths.keys_dir / "wg-server.key").write_bytes(os.urandom(32))
    (paths.keys_dir / "wg-server.key").chmod(0o600)
    (paths.state_dir / "tls").mkdir(mode=0o700)
    (paths.state_dir / "tls" / "cert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )
    (paths.run_dir / "dnsmasq.conf").write_text("transient")
    (paths.state_dir / "cache").mkdir()
    (paths.state_dir / "cache" / "rules.tar.gz").write_bytes(b"cached")
    return ctx


def dump(db_path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db_path)
    try:
        tables = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        conn.close()


def tree(ctx: Context) -> dict[str, tuple[bytes, int]]:
    """Every file of the box (state dir and config) with its bytes and mode."""
    files = {"CONFIG": (ctx.paths.config.read_bytes(), ctx.paths.config.stat().st_mode)}
    for path in sorted(ctx.paths.state_dir.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(ctx.paths.state_dir))] = (path.read_bytes(), path.stat().st_mode)
    return files


def leftovers(ctx: Context) -> list[str]:
    return sorted(p.name for p in ctx.paths.state_dir.parent.iterdir() if p.name.startswith(".mamori-"))


@pytest.fixture
def box(tmp_path: Path) -> Context:
    return make_box(tmp_path / "box")


@pytest.fixture
def archive(box: Context, tmp_path: Path) -> Path:
    return api.create_backup(box, PASS, tmp_path / "usb")


def test_round_trip_restores_identical_state(box: Context, tmp_path: Path) -> None:
    # A writer holding uncheckpointed rows in the WAL: a plain file copy of mamori.db would miss them.
    writer = box.db.connect()
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO kv(key, value) VALUES ('only_in_wal', 'ja')")
    assert Path(f"{box.paths.db}-wal").stat().st_size > 0
    before = dump(box.paths.db)
    keys = {p.name: (p.read_bytes(), p.stat().st_mode) for p in box.paths.keys_dir.iterdir()}
    config = box.paths.config.read_bytes()
    archive = api.create_backup(box, PASS, tmp_path / "usb")
    writer.close()

    shutil.rmtree(box.paths.state_dir)
    box.paths.config.unlink()
    manifest = api.restore_backup(box, archive, PASS, actor="vendor")

    after = dump(box.paths.db)
    assert ("only_in_wal", "ja") in after["kv"]
    for table in set(before) - {"audit", "kv", "backup_runs"}:
        assert after[table] == before[table], table
    assert after["audit"][: len(before["audit"])] == before["audit"]
    assert [row[5] for row in after["audit"][len(before["audit"]) :]] == ["backup.restore"]
    assert {r for r in after["kv"] if r[0] != "audit_head"} == {
        r for r in before["kv"] if r[0] != "audit_head"
    }
    assert AuditLog(box.db, box.paths.keys_dir / "audit.key").verify().ok
    assert {p.name: (p.read_bytes(), p.stat().st_mode) for p in box.paths.keys_dir.iterdir()} == keys
    assert box.paths.config.read_bytes() == config
    assert (box.paths.state_dir / "tls" / "cert.pem").read_text().startswith("-----BEGIN CERTIFICATE")
    assert not (box.paths.state_dir / "run").exists() and not (box.paths.state_dir / "cache").exists()
    assert {f.path for f in manifest.files} >= {
        "config.yaml",
        "state/db/mamori.db",
        "state/keys/wg-server.key",
    }
    assert manifest.clinic and manifest.software_version
    assert leftovers(box) == []


def test_restore_onto_a_fresh_box(archive: Path, box: Context, tmp_path: Path) -> None:
    fresh_paths = Paths(tmp_path / "fresh" / "etc" / "config.yaml", tmp_path / "fresh" / "var" / "mamori")
    fresh = Context(fresh_paths, Database(fresh_paths.db))
    api.restore_backup(fresh, archive, PASS)
    assert fresh_paths.config.read_bytes() == box.paths.config.read_bytes()
    assert dump(fresh_paths.db)["clinic_data"] == dump(box.paths.db)["clinic_data"]
    assert (fresh_paths.keys_dir / "wg-server.key").read_bytes() == (
        box.paths.keys_dir / "wg-server.key"
    ).read_bytes()
    # root's alone, or, where the web UI's account exists, traversable by its group (appliance.child_access)
    assert (fresh_paths.keys_dir.stat().st_mode & 0o7777) == (0o2710 if lookup_children() else 0o700)


def test_wrong_passphrase_changes_nothing(archive: Path, box: Context) -> None:
    before = tree(box)
    with pytest.raises(WrongPassphraseError):
        api.restore_backup(box, archive, "tsukue no ue ni ringo ga yottsu")
    assert tree(box) == before
    assert leftovers(box) == []


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0x04
    return bytes(out)


def _swap_header(data: bytes) -> bytes:
    other = io.BytesIO()
    w = EncryptingWriter(other, PASS, {"created": "x"})
    w.close()
    n = 12 + int.from_bytes(data[8:12], "big")
    m = 12 + int.from_bytes(other.getvalue()[8:12], "big")
    return other.getvalue()[:m] + data[n:]


@pytest.mark.parametrize(
    "damage",
    [_flip, lambda d: d[: len(d) // 2], lambda d: d[:-1], _swap_header, lambda d: d + b"junk"],
    ids=["flipped-byte", "half", "last-byte-missing", "swapped-header", "appended"],
)
def test_damaged_archive_changes_nothing(
    archive: Path, box: Context, damage: Callable[[bytes], bytes]
) -> None:
    archive.write_bytes(damage(archive.read_bytes()))
    before = tree(box)
    with pytest.raises(CorruptArchiveError) as info:
        api.restore_backup(box, archive, PASS)
    assert "機器は変更していません" in info.value.text("ja")
    assert tree(box) == before
    assert leftovers(box) == []


def reseal(archive: Path, mutate: Callable[[str, bytes], tuple[str, bytes] | None]) -> None:
    """What someone who knows the passphrase could do: re-encrypt a changed payload, manifest untouched."""
    plain = io.BytesIO()
    with open(archive, "rb") as src:
        decrypt_stream(src, PASS, plain)
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(plain.getvalue()), mode="r:gz") as old, \
            tarfile.open(fileobj=rebuilt, mode="w:gz") as new:  # fmt: skip
        for member in old.getmembers():
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            changed = mutate(member.name, data)
            if changed is None:
                continue
            info = tarfile.TarInfo(changed[0])
            info.size = len(changed[1])
            new.addfile(info, io.BytesIO(changed[1]))
    with open(archive, "wb") as out:
        writer = EncryptingWriter(out, PASS, {"created": "resealed"})
        writer.write(rebuilt.getvalue())
        writer.close()


def _manifest_listing(path: str) -> Callable[[str, bytes], tuple[str, bytes]]:
    def mutate(name: str, data: bytes) -> tuple[str, bytes]:
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["files"].append({"path": path, "sha256": "0" * 64, "size": 1, "mode": 0o644})
            return name, json.dumps(manifest).encode()
        return name, data

    return mutate


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda n, d: (n, bytes(32)) if n.endswith("wg-server.key") else (n, d), "fails its sha256"),
        (lambda n, d: (n, b"evil key") if n.endswith("wg-server.key") else (n, d), "wrong size"),
        (lambda n, d: None if n.endswith("audit.key") else (n, d), "members missing"),
        (lambda n, d: (n, d[:-1] + b"x") if n == "state/db/mamori.db" else (n, d), "fails its sha256"),
        (_manifest_listing("state/../../../etc/evil"), "unsafe member name"),
        (_manifest_listing("/etc/evil"), "unsafe member name"),
        (lambda n, d: ("state/extra", d) if n.endswith("cert.pem") else (n, d), "not in the manifest"),
    ],
    ids=[
        "changed-key",
        "resized-key",
        "missing-member",
        "changed-db",
        "dotdot",
        "absolute",
        "unlisted-member",
    ],
)
def test_member_failing_verification_changes_nothing(
    archive: Path,
    box: Context,
    tmp_path: Path,
    mutate: Callable[[str, bytes], tuple[str, bytes] | None],
    match: str,
) -> None:
    reseal(archive, mutate)
    before = tree(box)
    with pytest.raises(CorruptArchiveError, match=match):
        api.restore_backup(box, archive, PASS)
    assert tree(box) == before
    assert leftovers(box) == [] and not (tmp_path / "etc" / "evil").exists()


def test_failure_midway_through_the_swap_puts_the_old_state_back(
    archive: Path, box: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    (box.paths.keys_dir / "wg-server.key").write_bytes(b"a newer key than the archive has")
    before = tree(box)

    def disk_full(config: Path, data: bytes, mode: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(restore, "install_config", disk_full)
    with pytest.raises(RestoreError) as info:
        api.restore_backup(box, archive, PASS)
    assert "元の状態に戻しました" in info.value.text("ja")
    assert tree(box) == before
    assert leftovers(box) == []


def test_archives_in_the_state_dir_survive_a_restore(box: Context) -> None:
    first = api.create_backup(box, PASS, keep=3)
    second = api.create_backup(box, PASS, keep=3)
    assert first.parent == box.paths.state_dir / "backups"
    api.restore_backup(box, first, PASS)
    assert first.exists() and second.exists()
    assert (box.paths.run_dir / "dnsmasq.conf").read_text() == "transient"


def test_restore_test_records_evidence_and_touches_nothing_else(archive: Path, box: Context) -> None:
    keys_before = {p.name: p.read_bytes() for p in box.paths.keys_dir.iterdir()}
    ok = api.test_backup(box, archive, PASS, actor="事務長")
    bad = api.test_backup(box, archive, "not the passphrase at all")
    assert ok.ok and ok.manifest is not None and "復元テスト成功" in ok.text("ja")
    assert not bad.ok and bad.error_code == "backup.passphrase" and "FAILED" in bad.text("en")
    status = backup_status(box.db)
    assert status.last_ok_test is not None and status.last_ok_test.id == ok.id
    assert status.last_test is not None and status.last_test.id == bad.id and not status.last_test.ok
    assert status.last_ok_backup is not None and status.last_ok_backup.archive == str(archive)
    assert {p.name: p.read_bytes() for p in box.paths.keys_dir.iterdir()} == keys_before
    actions = [e.action for e in AuditLog(box.db, box.paths.keys_dir / "audit.key").search(limit=3)]
    assert actions == ["backup.test", "backup.test", "backup.create"]
    assert leftovers(box) == []


def test_missing_archive_is_a_typed_error(box: Context, tmp_path: Path) -> None:
    with pytest.raises(BackupError) as info:
        api.restore_backup(box, tmp_path / "nope.mbk", PASS)
    assert info.value.code == "backup.missing"
    result = api.test_backup(box, tmp_path / "nope.mbk", PASS)
    assert not result.ok and result.error_code == "backup.missing"


def test_fresh_box_gets_the_config_mode_from_the_manifest(archive: Path, tmp_path: Path) -> None:
    paths = Paths(tmp_path / "new" / "etc" / "config.yaml", tmp_path / "new" / "state")
    api.restore_backup(Context(paths, Database(paths.db)), archive, PASS)
    assert (paths.config.stat().st_mode & 0o777) == 0o640


def test_two_backups_at_the_same_moment_never_overwrite_each_other(box: Context, tmp_path: Path) -> None:
    import threading

    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(api.create_backup(box, PASS, tmp_path / "nas")))
               for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(made) == 3 and len(set(made)) == 3
    assert all(api.test_backup(box, p, PASS).ok for p in made)
    assert sorted(p.name for p in (tmp_path / "nas").iterdir()) == sorted(p.name for p in made)


def test_public_api_is_importable_from_the_package() -> None:
    from appliance.backup import Manifest, TestResult, create_backup, restore_backup, test_backup

    assert create_backup is api.create_backup and restore_backup is api.restore_backup
    assert test_backup is api.test_backup and TestResult is api.TestResult and Manifest.__name__ == "Manifest"


# -- restoring onto a box whose ports have other names (a Raspberry Pi's backup on a mini PC) -----------


def test_other_ports_without_a_mapping_are_refused_and_nothing_is_written(
    archive: Path, box: Context
) -> None:
    before = tree(box)
    with pytest.raises(ports.PortMismatchError) as caught:
        api.restore_backup(box, archive, PASS, box_ports=MINI_PC)
    ja = caught.value.text("ja")
    assert "wan0, lan0, guest0, dev0" in ja and "enp1s0, enp2s0, enp3s0, enp4s0" in ja and "--ports" in ja
    assert "--ports wan0=enp1s0" in caught.value.text("en")
    assert tree(box) == before  # not even an audit entry: byte for byte the same box
    assert leftovers(box) == []


@pytest.mark.parametrize(
    "mapping",
    [
        {"wan0": "enp1s0", "lan0": "enp2s0", "guest0": "enp3s0", "dev0": "enp9s0"},  # no such port here
        {"wan0": "enp1s0", "lan0": "enp1s0", "guest0": "enp3s0", "dev0": "enp4s0"},  # two onto one
        {"wan0": "enp1s0", "lan0": "enp2s0", "guest0": "enp3s0"},  # dev0 left out
    ],
    ids=["missing-port", "two-onto-one", "unmapped"],
)
def test_a_wrong_mapping_is_refused_and_nothing_is_written(
    archive: Path, box: Context, mapping: dict[str, str]
) -> None:
    before = tree(box)
    with pytest.raises(BackupError) as caught:
        api.restore_backup(box, archive, PASS, ports=mapping, box_ports=MINI_PC)
    assert caught.value.code in ("backup.port_map", "backup.ports")
    assert tree(box) == before
    assert leftovers(box) == []


def test_a_mapping_makes_the_mapped_config_the_live_revision(archive: Path, box: Context) -> None:
    from appliance.revisions import RevisionStore

    before = tree(box)
    seen: list[tuple[str, bool]] = []

    def shown(plan: ports.PortPlan) -> None:  # before the swap: the box is still the old one
        seen.append((plan.diff(), tree(box) == before))

    mapping = dict(zip(EXAMPLE_PORTS, MINI_PC, strict=True))
    api.restore_backup(box, archive, PASS, actor="業者", ports=mapping, box_ports=MINI_PC, on_plan=shown)
    [(diff, untouched)] = seen
    assert untouched
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert "-- name: wan0" in changed and "+- name: enp1s0" in changed and "+  - enp2s0" in changed
    assert len(changed) == 12  # four ports, two IDS interfaces: names only, nothing else
    text = box.paths.config.read_text(encoding="utf-8")
    assert "name: enp1s0" in text and "name: wan0" not in text and "# ポートとゾーン" in text
    live = RevisionStore(box.db).live()
    assert live is not None and live.config_text == text and live.author == "業者"
    assert live.comment == "復元（ポート対応: wan0→enp1s0, lan0→enp2s0, guest0→enp3s0, dev0→enp4s0）"
    audit = AuditLog(box.db, box.paths.keys_dir / "audit.key")
    entries = list(reversed(audit.search()))
    assert [e.action for e in entries[-2:]] == ["config.apply", "backup.restore"]
    assert entries[-1].detail["ports"] == mapping and entries[-2].detail["ports"] == mapping
    assert audit.verify().ok
