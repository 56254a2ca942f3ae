"""設定 → バックアップ with the Flask test client on real archives (create_backup with a real passphrase in a
tmp state dir): download gives the exact bytes, a name not in the listing is 404, 「今すぐバックアップ」 and
「復元テスト」 work and answer in Japanese, no passphrase gives the Japanese hint, the passphrase never shows."""

from __future__ import annotations

import pytest

from appliance.audit import AuditLog
from appliance.backup import create_backup
from appliance.backup.passphrase import set_passphrase
from appliance.backup.store import default_dir, list_archives
from tests.webui_fixtures import Box, audit_actions, make_box, session_token

SECRET = "sakura-kaze-yama-umi-2026"


@pytest.fixture(name="bbox")
def bbox_fixture(tmp_path) -> Box:  # type: ignore[no-untyped-def]
    b = make_box(tmp_path)
    b.add("admin", "admin")
    b.add("staff", "viewer")
    b.add("vendor-all", "vendor", grants=("firewall", "alerts", "vpn", "devices", "settings", "audit"))
    return b


def _admin(b: Box):  # type: ignore[no-untyped-def]
    client = b.client()
    b.login(client, "admin")
    return client


def test_page_without_passphrase_says_how_to_set_it(bbox: Box) -> None:
    client = _admin(bbox)
    page = client.get("/settings/backup").get_data(as_text=True)
    assert "設定されていません" in page and "mamori backup set-passphrase" in page
    assert "まだありません" in page
    r = client.post("/settings/backup/now", data={"csrf_token": session_token(client)}, follow_redirects=True)
    assert "mamori backup set-passphrase" in r.get_data(as_text=True)
    assert list_archives(default_dir(bbox.ctx.paths)) == []
    assert "バックアップ" in client.get("/settings/").get_data(as_text=True)


def test_download_returns_exact_bytes_and_is_audited(bbox: Box) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    path = create_backup(bbox.ctx, SECRET)
    client = _admin(bbox)
    page = client.get("/settings/backup").get_data(as_text=True)
    assert path.name in page and "設定されています" in page and SECRET not in page
    r = client.get(f"/settings/backup/download/{path.name}")
    assert r.status_code == 200
    assert r.data == path.read_bytes()
    assert "attachment" in r.headers["Content-Disposition"] and path.name in r.headers["Content-Disposition"]
    r.close()
    entries = [
        e for e in AuditLog(bbox.ctx.db).search(actor="admin", limit=50) if e.action == "web.backup_download"
    ]
    assert entries and entries[0].detail["archive"] == path.name


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "mamori-backup-20990101-000000.mbk",
        "passwd",
        "..",
        "%2Fetc%2Fpasswd",
    ],
)
def test_name_not_in_listing_is_404(bbox: Box, name: str) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    create_backup(bbox.ctx, SECRET)
    # A file beside the archives that the listing does not show (not a name the store makes).
    (default_dir(bbox.ctx.paths) / "passwd").write_bytes(b"secret")
    client = _admin(bbox)
    assert client.get(f"/settings/backup/download/{name}").status_code == 404
    r = client.post(f"/settings/backup/test/{name}", data={"csrf_token": session_token(client)})
    assert r.status_code == 404


def test_backup_now_and_restore_test(bbox: Box) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    client = _admin(bbox)
    token = session_token(client)
    r = client.post("/settings/backup/now", data={"csrf_token": token}, follow_redirects=True)
    page = r.get_data(as_text=True)
    archives = list_archives(default_dir(bbox.ctx.paths))
    assert len(archives) == 1 and "バックアップを作成しました" in page and archives[0].path.name in page
    name = archives[0].path.name
    r = client.post(f"/settings/backup/test/{name}", data={"csrf_token": token}, follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "復元テスト成功" in page and "（成功）" in page
    actions = audit_actions(bbox, "admin")
    assert "backup.create" in actions and "backup.test" in actions


def test_restore_test_of_a_damaged_archive_fails_in_japanese(bbox: Box) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    path = create_backup(bbox.ctx, SECRET)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF
    path.write_bytes(bytes(data))
    client = _admin(bbox)
    r = client.post(f"/settings/backup/test/{path.name}", data={"csrf_token": session_token(client)},
                    follow_redirects=True)  # fmt: skip
    page = r.get_data(as_text=True)
    assert "復元テスト失敗" in page and "（失敗）" in page


def test_post_without_csrf_is_refused(bbox: Box) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    client = _admin(bbox)
    r = client.post("/settings/backup/now", data={})
    assert r.status_code == 400
    assert list_archives(default_dir(bbox.ctx.paths)) == []


@pytest.mark.parametrize("who", ["staff", "vendor-all"])
def test_viewer_and_vendor_get_403(bbox: Box, who: str) -> None:
    set_passphrase(bbox.ctx.paths, SECRET)
    path = create_backup(bbox.ctx, SECRET)
    client = bbox.client()
    bbox.login(client, who)
    token = session_token(client)
    before = audit_actions(bbox, who).count("web.forbidden")
    assert client.get("/settings/backup").status_code == 403
    assert client.get(f"/settings/backup/download/{path.name}").status_code == 403
    assert client.post("/settings/backup/now", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/settings/backup/test/{path.name}", data={"csrf_token": token}).status_code == 403
    assert audit_actions(bbox, who).count("web.forbidden") == before + 4
    assert len(list_archives(default_dir(bbox.ctx.paths))) == 1
