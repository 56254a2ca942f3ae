"""設定 → IDS and 設定 → 時刻 with the Flask test client: the profile goes through the review page (one changed
line, comments kept), uploads are refused before the IDS with a Japanese reason (wrong type, too large,
not an archive, vendor), and the time page never shows a synchronisation state it did not read.

Suricata itself runs in tests/integration/test_webui_ids_update.py.
"""

from __future__ import annotations

import io
import os

import pytest
import yaml

from tests.webui_fixtures import Box, audit_actions, box_fixture, session_token  # noqa: F401
from webui.yamlpath import replace_scalar


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ids:\n  profile: clinic   # 説明\n", "ids:\n  profile: full   # 説明\n"),
        ("ids: {profile: clinic, enabled: true}\n", "ids: {profile: full, enabled: true}\n"),
        ("ids:\n  enabled: true\n", None),  # no profile line: the caller rebuilds the document
        ('ids:\n  profile: "clinic"\n', None),  # quoted: not a plain scalar
        ("ids: [clinic]\n", None),
        ("ids: {profile: [\n", None),  # not YAML
    ],
)
def test_replace_scalar(text: str, expected: str | None) -> None:
    assert replace_scalar(text, "ids.profile", "full") == expected


def test_profile_form_goes_through_review_with_one_changed_line(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    token = session_token(client)
    page = client.get("/settings/ids").get_data(as_text=True)
    assert "医院向け（おすすめ）" in page and "（いま使っています）" in page
    r = client.post("/settings/ids/profile", data={"csrf_token": token, "profile": "full"})
    assert r.status_code == 302 and "/settings/review/" in r.headers["Location"]
    review = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "すべてのルール" in review
    assert "+  profile: full" in review
    before = box.ctx.paths.config.read_text(encoding="utf-8").splitlines()
    r = client.post(r.headers["Location"], data={"csrf_token": token, "decision": "apply"})
    assert r.status_code == 302
    after = box.ctx.paths.config.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]  # one line, comment kept
    assert len(changed) == 1 and changed[0][1].startswith("  profile: full") and "# clinic" in changed[0][1]
    assert yaml.safe_load(box.ctx.paths.config.read_text(encoding="utf-8"))["ids"]["profile"] == "full"
    assert "config.apply" in audit_actions(box, "admin")
    same = client.post("/settings/ids/profile", data={"csrf_token": token, "profile": "full"})
    assert same.headers["Location"].endswith("/settings/ids")  # nothing to change: no proposal
    assert client.post("/settings/ids/profile", data={"csrf_token": token, "profile": "x"}).status_code == 400


def _upload(client, name: str, data: bytes):
    return client.post(
        "/settings/ids/rules",
        data={"csrf_token": session_token(client), "archive": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("rules.zip", b"PK\x03\x04", ".tar.gz の形式で選んでください"),
        ("rules.tar.gz", b"", "ファイルが空です"),
        ("rules.tar.gz", b"\x1f\x8b not really gzip at all", "ルールの書庫を開けません"),
    ],
)
def test_bad_upload_is_refused_in_japanese_and_audited(box: Box, name: str, data: bytes, reason: str) -> None:
    client = box.client()
    box.login(client, "admin")
    r = _upload(client, name, data)
    page = r.get_data(as_text=True)
    assert r.status_code == 400
    assert reason in page and "これまでのルールがそのまま使われています" in page
    assert str(box.ctx.paths.state_dir) not in page  # the temp file's path is not shown
    actions = audit_actions(box, "admin")
    assert "ids.rules.upload_refused" in actions or "ids.rules.update_failed" in actions
    uploads = box.ctx.paths.state_dir / "ids" / "uploads"
    assert not uploads.exists() or [p.name for p in uploads.iterdir()] == [".lock"]  # temp file removed


def test_upload_over_the_cap_is_refused(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    from webui import rules_upload

    monkeypatch.setattr(rules_upload, "MAX_UPLOAD", 1024)
    client = box.client()
    box.login(client, "admin")
    r = _upload(client, "rules.tar.gz", b"\x1f\x8b" + b"\0" * 4096)
    assert r.status_code == 400 and "ファイルが大きすぎます" in r.get_data(as_text=True)
    assert "ids.rules.upload_refused" in audit_actions(box, "admin")


def test_body_over_the_request_limit_gets_a_japanese_413(box: Box) -> None:
    from webui.app import LARGE_UPLOADS

    client = box.client()
    box.login(client, "admin")
    box.app.config["MAX_CONTENT_LENGTH"] = 1024  # the other forms' limit, lowered to keep the test small
    LARGE_UPLOADS["settings.ids_rules"], old = 2048, LARGE_UPLOADS["settings.ids_rules"]
    try:
        r = _upload(client, "rules.tar.gz", b"x" * 4096)
    finally:
        LARGE_UPLOADS["settings.ids_rules"] = old
    assert r.status_code == 413 and "大きすぎます" in r.get_data(as_text=True)


def test_vendor_with_settings_grant_sees_the_page_but_cannot_upload(tmp_path) -> None:
    from tests.webui_fixtures import make_box

    b = make_box(tmp_path)
    b.add("admin", "admin")
    b.add("vendor-set", "vendor", grants=("settings",))
    client = b.client()
    b.login(client, "vendor-set")
    page = client.get("/settings/ids").get_data(as_text=True)
    assert "ルールの更新は管理者だけができます" in page and 'name="archive"' not in page
    r = _upload(client, "rules.tar.gz", b"\x1f\x8b")
    assert r.status_code == 403 and "web.forbidden" in audit_actions(b, "vendor-set")


def test_time_page_shows_time_zone_and_the_real_ntp_state_of_a_box_without_chrony(box: Box) -> None:
    """The real timesvc.clock_state on a box whose NTP is not rendered: said plainly, no state invented."""
    box.clock.now = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC = 23:13:20 in Japan (sign-in moves it 30 s)
    client = box.client()
    box.login(client, "admin")
    page = client.get("/settings/time").get_data(as_text=True)
    assert "2026年09月21日（月） 23:13:" in page and "日本時間（Asia/Tokyo）" in page
    assert "時刻合わせ（NTP）は設定で使わないようになっています" in page
    assert "同期しています" not in page and "同期していません" not in page


@pytest.mark.parametrize(
    ("state", "shown", "absent"),
    [
        (dict(enabled=True, running=True, synchronised=True, stratum=2, offset_s=-0.0042, upstream="133.243.238.163"),
         ["同期しています", "133.243.238.163", "4.200 ミリ秒遅れ", "問題ありません"], "同期していません"),
        (dict(enabled=True, running=True, synchronised=True, stratum=2, offset_s=3.5, upstream="192.0.2.1"),
         ["同期しています", "3.500 秒進み", "少しずつ合わせています"], "問題ありません"),
        (dict(enabled=True, running=True), ["同期していません"], "同期しています"),
        (dict(enabled=True, running=False, problem="no socket"), ["chronyd）が動いていない"], "同期しています。"),
        (dict(enabled=True, running=True, problem="tracking output not understood"), ["読み取れませんでした"], "同期して"),
    ],
)  # fmt: skip
def test_time_page_says_what_clock_state_read(
    box: Box, monkeypatch: pytest.MonkeyPatch, state: dict, shown: list[str], absent: str
) -> None:
    """Each state timesvc can report, as the page words it (chronyd's own reading is the NTP area's test)."""
    from timesvc import status

    monkeypatch.setattr(status, "clock_state", lambda ctx, timeout=5.0: status.ClockState(**state))
    client = box.client()
    box.login(client, "admin")
    page = client.get("/settings/time").get_data(as_text=True)
    assert all(s in page for s in shown) and absent not in page


def test_large_upload_spools_to_the_state_dir_not_tmp(box: Box) -> None:
    """Werkzeug's own spool for a big upload is on the box's disk (`<state>/uploads`), not in /tmp."""
    body = b"\x1f\x8b" + os.urandom(600 * 1024)
    with box.app.test_request_context(
        "/settings/ids/rules", method="POST", content_type="multipart/form-data",
        data={"archive": (io.BytesIO(body), "rules.tar.gz")},
    ):  # fmt: skip
        from flask import request

        stream = request.files["archive"].stream
        stream.seek(0)
        assert stream.read() == body
        fd = stream.fileno()  # rolled over to a real file
        assert os.readlink(f"/proc/self/fd/{fd}").startswith(str(box.ctx.paths.state_dir / "uploads"))


def test_a_second_update_at_the_same_time_is_refused(box: Box) -> None:
    from webui import rules_upload

    client = box.client()
    box.login(client, "admin")
    with rules_upload.one_update_at_a_time(box.ctx):
        r = _upload(client, "rules.tar.gz", b"\x1f\x8b not gzip")
    assert r.status_code == 400 and "別のルール更新が進行中です" in r.get_data(as_text=True)
