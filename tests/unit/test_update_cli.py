"""`mamori update …`: Japanese by default, English with --lang en, JSON status, and a non-zero exit with the
reason for each refusal; on a box without IMAGE_VERSION, install verifies and stages, then refuses."""

from __future__ import annotations

import json

import pytest

import appliance.cli
from tests.updatekit import make_bundle, make_key, system_root


@pytest.fixture
def box(tmp_path, monkeypatch):
    monkeypatch.setattr(appliance.cli, "AREA_CLIS", ("update.cli",))  # only this area's commands
    monkeypatch.setenv("USER", "yamada")

    def setup(version: str | None):
        root = system_root(tmp_path / "root", version)
        monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(root))
        return make_key(root / "usr/share/mamori/update-keys")

    def run(*args: str) -> int:
        base = ["--config", str(tmp_path / "c.yaml"), "--state-dir", str(tmp_path / "state")]
        return appliance.cli.main([*base, *args])

    return setup, run, tmp_path


def test_not_an_image_box_verifies_stages_then_refuses(box, capsys) -> None:
    setup, run, tmp = box
    key = setup(None)
    assert run("update", "install", str(make_bundle(tmp / "b.tar", key, "2026.12.2"))) == 1
    out, err = capsys.readouterr()
    assert "版 2026.12.2 の署名を確認し、保存しました" in out
    assert "エラー: この機器は Mamori の機器用イメージで動いていないため" in err
    assert (tmp / "state/update/staged/mamori-2026.12.2-amd64.tar").is_file()
    assert not (tmp / "state/update/request.json").exists()


@pytest.mark.parametrize(
    ("kwargs", "version", "ja", "en"),
    [
        ({"tamper": True}, "2026.12.2", "署名された内容と一致しません", "does not match its signed manifest"),
        ({}, "2026.11.1", "より古いため", "a downgrade is refused"),
        ({"arch": "arm64"}, "2026.12.2", "別の種類の機器用です", "the bundle is for arm64"),
    ],
)
def test_refusals_exit_nonzero_with_reason(box, capsys, kwargs, version, ja, en) -> None:
    setup, run, tmp = box
    key = setup("2026.12.1")
    bundle = make_bundle(tmp / "b.tar", key, version, **kwargs)
    assert run("update", "install", str(bundle)) == 1
    assert ja in capsys.readouterr().err
    assert run("--lang", "en", "update", "install", str(bundle)) == 1
    assert en in capsys.readouterr().err
    assert list((tmp / "state/update/staged").iterdir()) == []


def test_bad_signature_in_english(box, capsys) -> None:
    setup, run, tmp = box
    setup("2026.12.1")
    stranger = make_key(tmp / "elsewhere")
    assert (
        run("--lang", "en", "update", "install", str(make_bundle(tmp / "b.tar", stranger, "2026.12.2"))) == 1
    )
    assert "error: the signature does not match any trusted update key" in capsys.readouterr().err


def test_install_on_an_image_box_writes_the_request_and_status_shows_it(box, capsys) -> None:
    setup, run, tmp = box
    key = setup("2026.12.1")
    assert (
        run("update", "install", "--reboot", "quiet", str(make_bundle(tmp / "b.tar", key, "2026.12.2"))) == 0
    )
    assert "版 2026.12.2 の更新を依頼しました" in capsys.readouterr().out
    request = json.loads((tmp / "state/update/request.json").read_text())
    assert request["requested_by"] == "yamada" and request["reboot"].startswith("at:")
    assert request["reboot"].endswith("T17:00:00Z")  # 02:00 in Tokyo
    assert run("update", "install", str(make_bundle(tmp / "c.tar", key, "2026.12.3"))) == 1
    assert "いま別の更新を入れています" in capsys.readouterr().err
    assert run("update", "status") == 0
    out = capsys.readouterr().out
    assert "動いている版: 2026.12.1" in out and "更新中 2026.12.3" not in out
    assert run("update", "status", "--json") == 0
    state = json.loads(capsys.readouterr().out)
    assert state["running"] == "2026.12.1" and state["in_progress"]["version"] == "2026.12.2"
    # The root side reports progress and, after the reboot, a rollback.
    (tmp / "state/update/progress.jsonl").write_text(
        json.dumps({"id": request["id"], "step": "write", "percent": 40, "message_ja": "書き込み中"}) + "\n"
    )
    assert run("--lang", "en", "update", "status") == 0
    assert "installing 2026.12.2: 40 %" in capsys.readouterr().out
    (tmp / "state/update/boot.json").write_text(json.dumps({
        "running": {"slot": "a", "version": "2026.12.1"}, "fallback": {"slot": "b", "version": "2026.12.2"},
        "trial": {"version": "2026.12.2", "outcome": "rolled-back"}, "at": "2026-12-07T17:05:00Z"}))  # fmt: skip
    assert run("update", "status") == 0
    assert "新しい版が確認に失敗したため、元の版に戻しました" in capsys.readouterr().out


def test_a_version_that_rolled_back_here_is_refused(box, capsys) -> None:
    setup, run, tmp = box
    key = setup("2026.12.1")
    (tmp / "state/update").mkdir(parents=True)
    (tmp / "state/update/boot.json").write_text(json.dumps({
        "running": {"slot": "a", "version": "2026.12.1"}, "fallback": {"slot": "b", "version": "2026.12.2"},
        "trial": {"version": "2026.12.2", "outcome": "rolled-back"}}))  # fmt: skip
    assert run("--lang", "en", "update", "install", str(make_bundle(tmp / "b.tar", key, "2026.12.2"))) == 1
    assert "failed its health check on this box and was rolled back" in capsys.readouterr().err
    assert not (tmp / "state/update/request.json").exists()
    assert run("update", "status") == 0
    assert "受け取り済み: 2026.12.2（この機器で確認に失敗した版です。入れません）" in capsys.readouterr().out


def test_check_without_source_is_refused(box, capsys) -> None:
    setup, run, _ = box
    setup("2026.12.1")
    assert run("update", "check") == 1
    assert "update.source" in capsys.readouterr().err


def test_cancel_before_the_root_side_takes_it(box, capsys) -> None:
    setup, run, tmp = box
    key = setup("2026.12.1")
    assert run("update", "install", str(make_bundle(tmp / "b.tar", key, "2026.12.2"))) == 0
    assert run("update", "cancel") == 0
    assert "版 2026.12.2 の更新の依頼を取りやめました" in capsys.readouterr().out
    assert not (tmp / "state/update/request.json").exists()
    # Taken by the root side: too late to withdraw.
    assert run("update", "install", str(make_bundle(tmp / "c.tar", key, "2026.12.3"))) == 0
    (tmp / "state/update/request.json").rename(tmp / "state/update/request.taken.json")
    assert run("update", "cancel") == 1
    assert "取りやめられる更新の依頼はありません" in capsys.readouterr().err
