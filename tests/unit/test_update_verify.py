"""update/: versions, the signed manifest, bundle verification, the version rules and staging."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from tests.updatekit import make_bundle, make_key, system_root
from update import stage
from update.box import BoxInfo, UpdatePaths, box_info
from update.bundle import verify_bundle
from update.errors import UpdateRefused
from update.manifest import Manifest, load_keys
from update.policy import check_acceptable, check_can_install
from update.version import NotAVersion, Version


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("2026.12.1", "2026.12.2", -1),
        ("2026.12", "2026.12.0", 0),
        ("2026.9.1", "2026.10.0", -1),  # numeric, not text: 9 < 10
        ("0.1.0.1765000000", "0.1.0.1765000001", -1),
        ("1.0.0.0", "1", 0),
        ("2027.1.1", "2026.12.31", 1),
    ],
)
def test_versions_compare_numerically(a: str, b: str, order: int) -> None:
    va, vb = Version.parse(a), Version.parse(b)
    assert (va > vb) - (va < vb) == order
    assert (va == vb) == (order == 0)


@pytest.mark.parametrize(
    "text", ["", "v1.2", "1.2-rc1", "1..2", "01.2", "1.2.3.4.5.6.7", "１.２", "1.2 ", "12345678901"]
)
def test_not_versions(text: str) -> None:
    if text == "1.2 ":  # surrounding whitespace is a file's newline, not a second reading
        assert Version.parse(text) == Version.parse("1.2")
        return
    with pytest.raises(NotAVersion):
        Version.parse(text)


@pytest.fixture
def env(tmp_path):
    root = system_root(tmp_path / "root", "2026.12.1")
    key = make_key(root / "usr/share/mamori/update-keys")
    upaths = UpdatePaths(tmp_path / "state", root)
    return key, upaths


def _box(upaths: UpdatePaths, arch: str = "amd64") -> BoxInfo:
    info = box_info(upaths)
    return BoxInfo(info.version, arch, info.boot)


def test_good_bundle_verifies_and_stages(env, tmp_path) -> None:
    key, upaths = env
    bundle = make_bundle(tmp_path / "b.tar", key, "2026.12.2", released="2026-12-01")
    verified = verify_bundle(bundle, load_keys(upaths.keys_dir))
    assert str(verified.manifest.version) == "2026.12.2"
    assert verified.manifest.released == "2026-12-01"
    assert verified.notes_ja == "セキュリティの修正を含みます。"
    staged = stage.stage(upaths, _box(upaths), stage.copy_in(upaths, bundle.open("rb")), "cli")
    assert staged.name == "mamori-2026.12.2-amd64.tar"
    assert [p.name for p in upaths.staged.iterdir()] == [staged.name]
    assert list(upaths.incoming.iterdir()) == []
    assert stage.current_staged(upaths) == staged


def _refused(upaths: UpdatePaths, bundle, box: BoxInfo | None = None) -> UpdateRefused:
    with pytest.raises(UpdateRefused) as info:
        stage.stage(upaths, box or _box(upaths), stage.copy_in(upaths, bundle.open("rb")), "cli")
    assert list(upaths.staged.iterdir()) == []  # nothing staged
    assert list(upaths.incoming.iterdir()) == []  # and the temp file is gone
    return info.value


def test_other_key_is_refused(env, tmp_path) -> None:
    _, upaths = env
    stranger = make_key(tmp_path / "elsewhere")
    exc = _refused(upaths, make_bundle(tmp_path / "b.tar", stranger, "2026.12.2"))
    assert exc.code == "update.signature"
    assert "署名を確認できませんでした" in exc.text("ja")
    assert "signature" in exc.text("en")


def test_tampered_bundle_is_refused(env, tmp_path) -> None:
    key, upaths = env
    exc = _refused(upaths, make_bundle(tmp_path / "b.tar", key, "2026.12.2", tamper=True))
    assert exc.code == "update.hash"
    assert "root.img.zst" in exc.text("ja")


def test_downgrade_refused_unless_signed_rollback(env, tmp_path) -> None:
    key, upaths = env
    exc = _refused(upaths, make_bundle(tmp_path / "old.tar", key, "2026.11.9"))
    assert exc.code == "update.downgrade"
    assert "古い" in exc.text("ja") and "older" in exc.text("en")
    assert _refused(upaths, make_bundle(tmp_path / "same.tar", key, "2026.12.1")).code == "update.same"
    ok = make_bundle(tmp_path / "rb.tar", key, "2026.11.9", rollback_allowed="yes")
    staged = stage.stage(upaths, _box(upaths), stage.copy_in(upaths, ok.open("rb")), "cli")
    assert staged.rollback_allowed and staged.version == "2026.11.9"


def test_wrong_arch_and_min_from(env, tmp_path) -> None:
    key, upaths = env
    exc = _refused(upaths, make_bundle(tmp_path / "arm.tar", key, "2026.12.2", arch="arm64"))
    assert exc.code == "update.arch" and "arm64" in exc.text("ja")
    exc = _refused(upaths, make_bundle(tmp_path / "m.tar", key, "2027.1.1", min_from_version="2026.12.5"))
    assert exc.code == "update.min_from" and "2026.12.5" in exc.text("ja")


def test_hostile_tar_members_are_refused(env, tmp_path) -> None:
    key, upaths = env
    good = make_bundle(tmp_path / "b.tar", key, "2026.12.2")
    for extra in ("../evil", "manifest"):  # a path outside, and a second manifest that tar -x would prefer
        bad = tmp_path / "bad.tar"
        bad.write_bytes(good.read_bytes())
        with tarfile.open(bad, "a") as tar:
            info = tarfile.TarInfo(extra)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        assert _refused(upaths, bad).code == "update.format"
    garbage = tmp_path / "g.tar"
    garbage.write_bytes(b"not a tar at all" * 100)
    assert _refused(upaths, garbage).code == "update.format"
    truncated = tmp_path / "t.tar"
    truncated.write_bytes(good.read_bytes()[:3000])
    assert _refused(upaths, truncated).code == "update.format"


def test_upload_size_limit(env) -> None:
    _, upaths = env
    with pytest.raises(UpdateRefused) as info:
        stage.copy_in(upaths, io.BytesIO(b"x" * 5000), limit=4096)
    assert info.value.code == "update.space"
    assert list(upaths.incoming.iterdir()) == []


def test_manifest_fields_are_validated() -> None:
    base = b"mamori-update 1\nversion 2026.12.2\nroot-size 10\nroot-sha256 " + b"0" * 64 + b"\n"
    assert Manifest.parse(base).arch == "amd64"  # bundles made before `arch` existed are amd64
    for bad in (b"arch mips\n", b"rollback-allowed maybe\n", b"version 2026.12.3\n", b"released tomorrow\n"):
        with pytest.raises(UpdateRefused):
            Manifest.parse(base + bad)
    with pytest.raises(UpdateRefused):
        Manifest.parse(b"something else\n")


def test_not_an_image_box_stages_but_cannot_install(tmp_path) -> None:
    root = system_root(tmp_path / "root", None)
    key = make_key(root / "usr/share/mamori/update-keys")
    upaths = UpdatePaths(tmp_path / "state", root)
    box = _box(upaths)
    assert box.version is None
    bundle = make_bundle(tmp_path / "b.tar", key, "2026.12.2")
    stage.stage(upaths, box, stage.copy_in(upaths, bundle.open("rb")), "cli")  # verification still works
    with pytest.raises(UpdateRefused) as info:
        stage.request_install(upaths, box, "now", "admin")
    assert info.value.code == "update.not_image"
    assert "Mamori の機器用イメージ" in info.value.text("ja")
    assert not upaths.request.exists()


def test_request_is_written_once_and_busy_until_result(env, tmp_path) -> None:
    key, upaths = env
    bundle = make_bundle(tmp_path / "b.tar", key, "2026.12.2")
    stage.stage(upaths, _box(upaths), stage.copy_in(upaths, bundle.open("rb")), "cli")
    req = stage.request_install(upaths, _box(upaths), "now", "admin")
    on_disk = json.loads(upaths.request.read_text())
    assert on_disk == req and req["bundle"] == "mamori-2026.12.2-amd64.tar" and req["reboot"] == "now"
    with pytest.raises(UpdateRefused) as info:
        stage.request_install(upaths, _box(upaths), "now", "admin")
    assert info.value.code == "update.busy"
    upaths.request.rename(upaths.taken)  # the root side took it ...
    with pytest.raises(UpdateRefused):
        stage.request_install(upaths, _box(upaths), "now", "admin")
    upaths.result.write_text(json.dumps({"id": req["id"], "ok": False}))  # ... and finished
    assert stage.in_progress(upaths) is None


def test_no_second_slot_cannot_install(env) -> None:
    _, upaths = env
    upaths.ensure()
    upaths.boot.write_text(json.dumps({"running": {"slot": "a", "version": "2026.12.1"}, "fallback": None}))
    with pytest.raises(UpdateRefused) as info:
        check_can_install(box_info(upaths))
    assert info.value.code == "update.not_image"


def test_policy_without_running_version_only_checks_arch() -> None:
    m = Manifest.parse(
        b"mamori-update 1\nversion 1.0\nroot-size 1\nroot-sha256 " + b"a" * 64 + b"\narch arm64\n"
    )
    check_acceptable(m, BoxInfo(None, "arm64", None))
    with pytest.raises(UpdateRefused):
        check_acceptable(m, BoxInfo(None, "amd64", None))


def test_upload_stops_before_the_data_partition_fills(env, monkeypatch) -> None:
    """An upload's length is not known in advance: the copy looks at the free space as it goes and stops while
    the margin the database and logs need is still free, leaving nothing behind."""
    _, upaths = env
    upaths.ensure()
    monkeypatch.setattr(stage, "SPACE_CHECK", 2 * 1048576)
    free = [stage.SPACE_MARGIN + stage.SPACE_CHECK + 1048576]

    def disk_usage(_path: object) -> shutil._ntuple_diskusage:
        return shutil._ntuple_diskusage(1 << 40, (1 << 40) - free[0], free[0])

    class Filling(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            data = super().read(n)
            free[0] -= len(data)  # what the copy writes is gone from the partition
            return data

    monkeypatch.setattr(stage.shutil, "disk_usage", disk_usage)
    with pytest.raises(UpdateRefused) as info:
        stage.copy_in(upaths, Filling(b"x" * (8 * 1048576)), limit=stage.DEFAULT_LIMIT)
    assert info.value.code == "update.space"
    assert free[0] >= stage.SPACE_MARGIN, "stopped while the margin was still free"
    assert list(upaths.incoming.iterdir()) == []
