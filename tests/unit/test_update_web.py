"""「ソフトウェア更新」 with the Flask test client: everyone signed in sees the versions and what is available;
only the administrator (or a vendor granted the update area) gets the buttons, installs, uploads and asks for
a check; refusals say why in Japanese and leave nothing staged; every action is in the audit log; the progress
endpoint reads progress.jsonl; a rollback after the reboot is shown in the words the clinic reads."""

from __future__ import annotations

import io
import json

import pytest

from tests.updatekit import make_bundle, make_key, system_root
from tests.webui_fixtures import Box, audit_actions, box_fixture, session_token  # noqa: F401
from update.box import UpdatePaths


@pytest.fixture
def key(tmp_path, monkeypatch):
    root = system_root(tmp_path / "root", "2026.12.1")
    monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(root))
    return make_key(root / "usr/share/mamori/update-keys")


def _upload(client, data: bytes, name: str = "b.tar"):
    return client.post("/update/upload", data={"csrf_token": session_token(client), "bundle": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", follow_redirects=True)  # fmt: skip


def test_admin_uploads_sees_notes_and_installs(box: Box, key, tmp_path) -> None:
    client = box.client()
    box.login(client, "admin")
    page = client.get("/update/").get_data(as_text=True)
    assert "ソフトウェア更新" in page and "2026.12.1" in page and "受け取った新しい版はありません" in page
    notes = "<script>alert(1)</script> 電子カルテとの通信を改善しました。"
    r = _upload(client, make_bundle(tmp_path / "b.tar", key, "2026.12.2", notes=notes).read_bytes())
    page = r.get_data(as_text=True)
    assert "版 2026.12.2 の更新ファイルの署名を確認し、保存しました" in page
    assert "電子カルテとの通信を改善しました" in page and "<script>alert(1)</script>" not in page  # escaped
    assert "今すぐ更新" in page and "今夜 02:00 に更新" in page
    r = client.post("/update/install", data={"csrf_token": session_token(client), "when": "quiet"},
                    follow_redirects=True)  # fmt: skip
    assert "静かな時間帯の始め（02:00）に再起動します" in r.get_data(as_text=True)
    request = json.loads(UpdatePaths.of(box.ctx.paths).request.read_text())
    assert request["requested_by"] == "admin" and request["reboot"].endswith("T17:00:00Z")
    assert {"update.staged", "update.requested"} <= set(audit_actions(box, "admin"))
    page = client.get("/update/").get_data(as_text=True)
    assert "更新中です" in page and "今すぐ更新" not in page  # one install at a time
    assert "書き込みが始まる前なら取りやめる" in page
    r = client.post("/update/cancel", data={"csrf_token": session_token(client)}, follow_redirects=True)
    assert "更新の依頼を取りやめました" in r.get_data(as_text=True) and "update.cancelled" in audit_actions(
        box, "admin"
    )
    client.post("/update/install", data={"csrf_token": session_token(client), "when": "quiet"})
    request = json.loads(UpdatePaths.of(box.ctx.paths).request.read_text())
    # The root side writes progress; the endpoint the bar polls reads it.
    UpdatePaths.of(box.ctx.paths).progress.write_text(
        json.dumps({"id": request["id"], "step": "write", "percent": 42, "message_ja": "書き込み中です"})
        + "\n"
    )
    assert client.get("/update/progress").get_json() == {"active": True, "percent": 42, "step": "write",
                                                         "message": "書き込み中です"}  # fmt: skip


def test_refused_uploads_say_why_and_stage_nothing(box: Box, key, tmp_path) -> None:
    client = box.client()
    box.login(client, "admin")
    staged = UpdatePaths.of(box.ctx.paths).staged
    r = _upload(client, make_bundle(tmp_path / "t.tar", key, "2026.12.2", tamper=True).read_bytes())
    assert "署名された内容と一致しません" in r.get_data(as_text=True)
    r = _upload(client, make_bundle(tmp_path / "o.tar", key, "2026.11.1").read_bytes())
    assert "より古いため、更新しません" in r.get_data(as_text=True)
    r = _upload(client, b"not a bundle")
    assert "更新ファイルの形式が正しくありません" in r.get_data(as_text=True)
    assert list(staged.iterdir()) == []
    assert audit_actions(box, "admin").count("update.refused") == 3


def test_viewer_and_ungranted_vendor_only_see(box: Box, key, tmp_path) -> None:
    for name in ("staff", "vendor-none"):
        client = box.client()
        box.login(client, name)
        page = client.get("/update/").get_data(as_text=True)
        assert "動いている版" in page and "読み込んで確認する" not in page and "今すぐ更新" not in page
        assert "ソフトウェア更新" in client.get("/").get_data(as_text=True)  # in the navigation
        for path in ("/update/install", "/update/upload", "/update/check"):
            assert client.post(path, data={"csrf_token": session_token(client)}).status_code == 403
        assert "web.forbidden" in audit_actions(box, name)
    assert not UpdatePaths.of(box.ctx.paths).request.exists()


def test_granted_vendor_may_install(box: Box, key, tmp_path) -> None:
    box.add("vendor-up", "vendor", grants=("update",))
    client = box.client()
    box.login(client, "vendor-up")
    r = _upload(client, make_bundle(tmp_path / "b.tar", key, "2026.12.2").read_bytes())
    assert "今すぐ更新" in r.get_data(as_text=True)
    r = client.post("/update/install", data={"csrf_token": session_token(client), "when": "now"},
                    follow_redirects=True)  # fmt: skip
    assert "への更新を始めました" in r.get_data(as_text=True)
    assert "update.requested" in audit_actions(box, "vendor-up")


def test_without_csrf_nothing_happens(box: Box, key, tmp_path) -> None:
    client = box.client()
    box.login(client, "admin")
    r = client.post("/update/check", data={})
    assert r.status_code == 400 and "web.csrf_rejected" in audit_actions(box)


def test_check_button_asks_the_daemon(box: Box, key) -> None:
    client = box.client()
    box.login(client, "admin")
    client.post("/update/check", data={"csrf_token": session_token(client)})
    assert box.ctx.db.get_kv("update.check_requested") == "admin"
    assert "update.check_asked" in audit_actions(box, "admin")


def test_rollback_is_shown_in_plain_japanese(box: Box, key) -> None:
    upaths = UpdatePaths.of(box.ctx.paths)
    upaths.ensure()
    upaths.boot.write_text(json.dumps({
        "running": {"slot": "a", "version": "2026.12.1"}, "fallback": {"slot": "b", "version": "2026.12.2"},
        "trial": {"version": "2026.12.2", "outcome": "rolled-back"}, "at": "2026-12-07T17:05:00Z"}))  # fmt: skip
    client = box.client()
    box.login(client, "staff")
    page = client.get("/update/").get_data(as_text=True)
    assert "新しい版が確認に失敗したため、元の版に戻しました" in page and "2026.12.2" in page


def test_a_version_that_rolled_back_here_is_not_offered_again(box: Box, key, tmp_path) -> None:
    """The staged bundle of the version whose trial boot just failed would fail the same way: the page says
    so instead of offering it, an install is refused in Japanese, and a newer bundle is offered again."""
    upaths = UpdatePaths.of(box.ctx.paths)
    upaths.ensure()
    upaths.boot.write_text(json.dumps({
        "running": {"slot": "a", "version": "2026.12.1"}, "fallback": {"slot": "b", "version": "2026.12.2"},
        "trial": {"version": "2026.12.2", "outcome": "rolled-back"}}))  # fmt: skip
    client = box.client()
    box.login(client, "admin")
    page = _upload(client, make_bundle(tmp_path / "b.tar", key, "2026.12.2").read_bytes()).get_data(
        as_text=True
    )
    assert 'id="update-failed-here"' in page and "今すぐ更新" not in page and "今夜 02:00 に更新" not in page
    assert "この機器で更新後の確認に失敗した版のため、入れられません" in page and "下のボタンで" not in page
    r = client.post("/update/install", data={"csrf_token": session_token(client), "when": "now"},
                    follow_redirects=True)  # fmt: skip
    assert "確認に失敗して元の版に戻ったため、もう一度は入れません" in r.get_data(as_text=True)
    assert not upaths.request.exists()
    assert audit_actions(box, "admin").count("update.refused") == 1
    page = _upload(client, make_bundle(tmp_path / "c.tar", key, "2026.12.3").read_bytes()).get_data(
        as_text=True
    )
    assert 'id="update-failed-here"' not in page and "今すぐ更新" in page


def test_not_an_image_box_has_no_install_buttons(box: Box, tmp_path, monkeypatch) -> None:
    root = system_root(tmp_path / "plain", None)
    monkeypatch.setenv("MAMORI_UPDATE_ROOT", str(root))
    key = make_key(root / "usr/share/mamori/update-keys")
    client = box.client()
    box.login(client, "admin")
    page = _upload(client, make_bundle(tmp_path / "b.tar", key, "2026.12.2").read_bytes()).get_data(
        as_text=True
    )
    assert "機器用イメージで動いていないため" in page and "今すぐ更新" not in page
    r = client.post("/update/install", data={"csrf_token": session_token(client), "when": "now"},
                    follow_redirects=True)  # fmt: skip
    assert "機器用イメージで動いていないため" in r.get_data(as_text=True)
    assert not UpdatePaths.of(box.ctx.paths).request.exists()
