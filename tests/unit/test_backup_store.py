"""Generations, listing without the passphrase, export to a "USB stick", and the passphrase file."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.backup import crypto, store
from appliance.backup.crypto import EncryptingWriter
from appliance.backup.errors import BackupError, WeakPassphraseError
from appliance.backup.passphrase import load_passphrase, passphrase_path, set_passphrase
from appliance.clock import clinic_time
from appliance.paths import Paths

PASS = "yama no ue no ookina ki"


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


def fake_archive(path: Path, created: str) -> Path:
    with open(path, "wb") as out:
        writer = EncryptingWriter(out, PASS, {"created": created, "software_version": "0.1.0"})
        writer.write(b"payload")
        writer.close()
    return path


def three_am() -> tuple[float, str]:
    """Today 03:00 in Tokyo (the default clinic zone), and the stamp its archive is named with."""
    moment = clinic_time().replace(hour=3, minute=0, second=0, microsecond=0)
    return moment.timestamp(), f"{moment:%Y%m%d}-030000"


def test_new_names_sort_by_time_and_never_collide(tmp_path: Path) -> None:
    when, stamp = three_am()
    names = []
    for _ in range(3):
        path = store.new_path(tmp_path, when)
        path.write_bytes(b"x")
        names.append(path.name)
    assert names == [f"mamori-backup-{stamp}.mbk", f"mamori-backup-{stamp}-2.mbk",
                     f"mamori-backup-{stamp}-3.mbk"]  # fmt: skip
    assert [p.name for p in store.generations(tmp_path)] == names


def test_prune_keeps_the_newest_n_and_nothing_else_is_touched(tmp_path: Path) -> None:
    made = []
    for day in range(1, 11):
        path = tmp_path / f"mamori-backup-202611{day:02d}-030000.mbk"
        path.write_bytes(b"x")
        made.append(path)
    (tmp_path / "mamori-backup-20261101-030000-2.mbk").write_bytes(b"x")
    others = [tmp_path / "カルテ.pdf", tmp_path / "mamori-backup-notes.txt", tmp_path / "mamori-backup-1.mbk"]
    for other in others:
        other.write_bytes(b"not ours")
    deleted = store.prune(tmp_path, 3)
    assert len(deleted) == 8
    assert [p.name for p in store.generations(tmp_path)] == [p.name for p in made[-3:]]
    assert all(o.exists() for o in others)
    assert store.prune(tmp_path, 3) == []
    with pytest.raises(ValueError):
        store.prune(tmp_path, 0)


def test_list_shows_headers_without_the_passphrase_and_flags_unreadable_files(tmp_path: Path) -> None:
    fake_archive(tmp_path / "mamori-backup-20261125-030000.mbk", "2026-11-25T03:00:00+09:00")
    fake_archive(tmp_path / "mamori-backup-20261126-030000.mbk", "2026-11-26T03:00:00+09:00")
    (tmp_path / "mamori-backup-20261127-030000.mbk").write_bytes(b"garbage, not an archive")
    infos = store.list_archives(tmp_path)
    assert [i.path.name[14:22] for i in infos] == ["20261127", "20261126", "20261125"]
    assert infos[0].header is None and infos[0].problem == "backup.corrupt"
    assert infos[1].header is not None and infos[1].header.created == "2026-11-26T03:00:00+09:00"
    assert store.list_archives(tmp_path / "missing") == []


def test_export_copies_byte_identical_and_refuses_a_missing_stick(tmp_path: Path) -> None:
    archive = fake_archive(tmp_path / "mamori-backup-20261126-030000.mbk", "x")
    usb = tmp_path / "usb"
    usb.mkdir()
    copied = store.export(archive, usb)
    assert copied.read_bytes() == archive.read_bytes() and copied.parent == usb
    assert [p.name for p in usb.iterdir()] == [archive.name]
    with pytest.raises(BackupError) as info:
        store.export(archive, tmp_path / "not-mounted")
    assert "USBメモリ" in info.value.text("ja") and info.value.code == "backup.export"
    with pytest.raises(BackupError, match="not found"):
        store.export(tmp_path / "nope.mbk", usb)


@pytest.mark.parametrize(
    ("passphrase", "ok"),
    [
        ("short", False),
        ("elevenchars", False),
        ("aaaaaaaaaaaaaaaa", False),
        ("abababababababab", False),
        (" leading space passphrase", False),
        ("twelve chars", False),  # 12 characters were enough before issue 18
        ("fifteen-chars!!", False),
        ("ab cd ef gh", False),  # four words, 11 characters
        ("うみ やま かわ そら ほし", True),
        ("うみ　やま　かわ　そら　ほし", True),  # the Japanese full-width space separates words too
        ("sixteen chars ok", True),
        ("correct horse battery staple", True),
    ],
)
def test_passphrase_strength(tmp_path: Path, passphrase: str, ok: bool) -> None:
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    if ok:
        path = set_passphrase(paths, passphrase)
        assert load_passphrase(paths) == passphrase
        assert (path.stat().st_mode & 0o777) == 0o600 and path == passphrase_path(paths)
        assert (paths.keys_dir.stat().st_mode & 0o777) == 0o700
    else:
        with pytest.raises(WeakPassphraseError) as info:
            set_passphrase(paths, passphrase)
        assert info.value.text("ja") and info.value.text("en") != info.value.text("ja")
        assert load_passphrase(paths) is None


def test_a_name_freed_by_pruning_is_never_reused_for_a_newer_backup(tmp_path: Path) -> None:
    when, stamp = three_am()
    first = store.new_path(tmp_path, when)
    first.write_bytes(b"1")
    second = store.new_path(tmp_path, when)
    second.write_bytes(b"2")
    first.unlink()
    third = store.new_path(tmp_path, when)
    assert third.name == f"mamori-backup-{stamp}-3.mbk"
    third.write_bytes(b"3")
    assert store.generations(tmp_path) == [second, third]
