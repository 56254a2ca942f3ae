"""The app's security plumbing and pages: headers, cookies, CSRF, the first-boot wizard, inert
attacker-controlled text, the config editor with messages beside the problem, diff/apply/rollback, CSV."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pyotp
import pytest
import yaml

from tests.unit.test_notify_channels import cert_dir  # noqa: F401  (fixture)
from tests.webui_fixtures import Box, audit_actions, box_fixture, csrf, make_box, session_token  # noqa: F401
from webui.setup_code import MAX_FAILURES, WINDOW_SECONDS, code_path, read_setup_code

HOSTILE = '<script>alert("x")</script>'


def test_security_headers_on_every_page(box: Box) -> None:
    client = box.client()
    for path in ("/login", "/static/mamori.css"):
        r = client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")


def test_session_cookie_is_secure_httponly_strict(box: Box) -> None:
    client = box.client()
    r = client.get("/login")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-mamori=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_templates_have_no_inline_script_or_style() -> None:
    root = Path(__file__).resolve().parents[2] / "webui" / "templates"
    for path in root.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert " style=" not in text and "<style" not in text and " on" not in re.sub(r"\s+on\w*=", " X", "")
        assert not re.search(r"\son[a-z]+=", text), path
        assert "|safe" not in text.replace(" ", ""), path
        assert "http://" not in text and "https://" not in text, path  # no CDN, no external links


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_csrf_rejected_and_audited(box: Box, token: str | None) -> None:
    client = box.client()
    box.login(client, "admin")
    data = {"username": "mallory", "password": "Kanja-no-Mamori-2026", "role": "admin"}
    if token is not None:
        data["csrf_token"] = token
    r = client.post("/accounts/", data=data)
    assert r.status_code == 400 and "受け付けられませんでした" in r.get_data(as_text=True)
    assert box.store().get("mallory") is None
    assert "web.csrf_rejected" in audit_actions(box)
    data["csrf_token"] = session_token(client)
    assert client.post("/accounts/", data=data).status_code == 302
    assert box.store().get("mallory") is not None


def test_first_boot_wizard_creates_admin_and_applies_config(tmp_path: Path) -> None:
    b = make_box(tmp_path, with_config=False)
    client = b.client()
    for path in ("/", "/alerts/", "/settings/", "/login"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/setup/"), path
    token = csrf(client, "/setup/")
    code = read_setup_code(b.ctx.paths.keys_dir)
    assert code and code_path(b.ctx.paths.keys_dir).stat().st_mode & 0o777 == 0o600
    r = client.post("/setup/", data={"csrf_token": token, "setup_code": code, "username": "incho",
                                     "password": "incho", "confirm": "incho"})  # fmt: skip
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "ユーザー名と同じ" in page
    assert f'value="{code}"' in page  # what was typed stays in the form
    pw = "Sakura-Naika-2026!"
    typed = f" {code[:4].lower()}-{code[4:]} "  # as a person may type it
    r = client.post("/setup/", data={"csrf_token": token, "setup_code": typed, "username": "incho",
                                     "password": pw, "confirm": pw})  # fmt: skip
    assert r.headers["Location"].endswith("/setup/totp")
    page = client.get("/setup/totp").get_data(as_text=True)
    secret = re.search(r'class="secret">([A-Z2-7]+)<', page).group(1)
    assert not b.store().admin_exists()  # not before the second factor is proven
    with client.session_transaction() as sess:  # the seed waits on the server, never in the (signed) cookie
        assert secret not in json.dumps(dict(sess))
    token = csrf(client, "/setup/totp")
    enrol_code = pyotp.TOTP(secret).at(b.clock.now)
    r = client.post("/setup/totp", data={"csrf_token": token, "code": enrol_code})
    assert r.headers["Location"].endswith("/setup/clinic") and b.store().admin_exists()
    assert b.store().check_totp("incho", enrol_code) is False  # the code that enrolled is used up
    assert not code_path(b.ctx.paths.keys_dir).exists()  # used up once an administrator exists
    token = session_token(client)
    assert client.get("/").headers["Location"].endswith("/setup/clinic")  # admin finishes the wizard first
    client.post("/setup/clinic", data={"csrf_token": token, "clinic_name": "さくら内科クリニック"})
    ports = re.findall(r'name="zone_([^"]+)"', client.get("/setup/ports").get_data(as_text=True))
    assert "lo" not in ports
    if len(ports) < 2:
        pytest.skip("this machine shows fewer than two network ports (the integration test uses veths)")
    r = client.post("/setup/ports", data={"csrf_token": token, f"zone_{ports[0]}": "lan"})
    assert r.status_code == 400 and "「インターネット」にする差し込み口" in r.get_data(as_text=True)
    # Only a declaration here: the unit box has no engines, so nothing is changed on this machine's ports.
    r = client.post("/setup/ports", data={"csrf_token": token, f"zone_{ports[0]}": "wan", f"address_{ports[0]}": "",
                                          f"zone_{ports[1]}": "lan", f"address_{ports[1]}": "192.168.10.1/24"})  # fmt: skip
    assert r.status_code == 302
    r = client.post("/setup/notify", data={"csrf_token": token, "notify_email": "info@example.jp"})
    assert r.status_code == 400 and "送信サーバー" in r.get_data(as_text=True)
    r = client.post("/setup/notify", data={"csrf_token": token, "notify_email": "info@example.jp",
                                           "smtp_host": "smtp.example.jp"})  # fmt: skip
    summary = client.get("/setup/summary").get_data(as_text=True)
    assert "さくら内科クリニック" in summary and "info@example.jp" in summary
    r = client.post("/setup/summary", data={"csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)[-1500:]
    assert r.headers["Location"].endswith("/")
    written = yaml.safe_load(b.ctx.paths.config.read_text(encoding="utf-8"))
    assert written["clinic"]["name"] == "さくら内科クリニック"
    assert written["notifications"]["email"]["recipients"] == ["info@example.jp"]
    assert "config.apply" in audit_actions(b, "incho") and "web.setup_done" in audit_actions(b, "incho")
    assert client.get("/").status_code == 200
    assert (
        client.get("/setup/").headers["Location"].endswith("/setup/clinic")
    )  # wizard can't make a 2nd admin


def test_a_second_browser_cannot_keep_a_half_made_admin(tmp_path: Path) -> None:
    b = make_box(tmp_path, with_config=False)
    first, second = b.client(), b.client()
    pw = "Sakura-Naika-2026!"
    for client, name in ((first, "incho"), (second, "intruder")):
        token = csrf(client, "/setup/")
        code = read_setup_code(b.ctx.paths.keys_dir)
        client.post("/setup/", data={"csrf_token": token, "setup_code": code, "username": name, "password": pw,
                                     "confirm": pw})  # fmt: skip
    page = first.get("/setup/totp").get_data(as_text=True)
    secret = re.search(r'class="secret">([A-Z2-7]+)<', page).group(1)
    first.post("/setup/totp", data={"csrf_token": session_token(first), "code": pyotp.TOTP(secret).now()})
    assert b.store().get("intruder") is None
    assert second.get("/setup/totp").headers["Location"].endswith("/setup/")


def test_the_wizard_needs_the_setup_code_from_the_box(tmp_path: Path) -> None:
    """Whoever reaches the wizard first must not own the box: without the code from its screen, no account."""
    b = make_box(tmp_path, with_config=False)
    client = b.client()
    token = csrf(client, "/setup/")
    code = read_setup_code(b.ctx.paths.keys_dir)
    pw = "Sakura-Naika-2026!"
    form = {"csrf_token": token, "username": "mallory", "password": pw, "confirm": pw}
    for wrong in ("", "AAAA-AAAA" if code != "AAAAAAAA" else "BBBB-BBBB", code[:7]):
        r = client.post("/setup/", data={**form, "setup_code": wrong})
        assert r.status_code == 400 and "セットアップコードが違います" in r.get_data(as_text=True)
    assert b.store().get("mallory") is None
    assert audit_actions(b).count("web.setup_code_failed") == 3
    # Guessing is limited box-wide: after MAX_FAILURES even the right code waits for the window to pass.
    for _ in range(MAX_FAILURES - 3):
        client.post("/setup/", data={**form, "setup_code": "ZZZZ-ZZZ2"})
    r = client.post("/setup/", data={**form, "setup_code": code})
    assert r.status_code == 429 and "しばらく" in r.get_data(as_text=True)
    assert b.store().get("mallory") is None
    b.clock.advance(WINDOW_SECONDS + 1)
    r = client.post("/setup/", data={**form, "setup_code": code})
    assert r.status_code == 302 and r.headers["Location"].endswith("/setup/totp")
    assert b.store().get("mallory") is not None


def _seed_hostile_incident(b: Box) -> None:
    now = time.time()
    detail = {
        "http": {"hostname": HOSTILE, "url": "/<img src=x onerror=alert(1)>", "http_user_agent": HOSTILE}
    }
    with b.ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO ids_incidents(id, sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category) VALUES (7, 2024897, '198.51.100.66', '192.168.10.10', ?, ?, 2, 1, ?, 'Web Application Attack')",
            (now - 60, now, "ET WEB " + HOSTILE),
        )
        conn.execute(
            "INSERT INTO ids_alerts(incident_id, ts, sid, rev, signature, category, severity, src_ip, src_port,"
            " dest_ip, dest_port, proto, detail) VALUES (7, ?, 2024897, 1, ?, 'Web Application Attack', 1,"
            " '198.51.100.66', 40000, '192.168.10.10', 80, 'TCP', ?)",
            (now, "ET WEB " + HOSTILE, json.dumps(detail)),
        )


def test_attacker_text_is_escaped_everywhere(box: Box) -> None:
    _seed_hostile_incident(box)
    client = box.client()
    box.login(client, "admin")
    for path in ("/", "/alerts/", "/alerts/7", "/alerts/?q=" + HOSTILE):
        page = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page, path
    detail = client.get("/alerts/7").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in detail
    assert (
        "ウェブ" in detail or "攻撃" in detail
    )  # the headline is the Japanese explanation, not the signature


def test_dashboard_light_and_acknowledge(box: Box) -> None:
    _seed_hostile_incident(box)
    client = box.client()
    box.login(client, "staff")
    page = client.get("/").get_data(as_text=True)
    assert "要対応" in page and "light-alert" in page
    r = client.post("/alerts/7/ack", data={"csrf_token": session_token(client)})
    assert r.status_code == 302
    assert "確認済み" in client.get("/alerts/7").get_data(as_text=True)
    assert "alerts.ack" in audit_actions(box, "staff")


def test_config_editor_shows_messages_beside_the_problem_then_diff_apply_rollback(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    token = session_token(client)
    good = box.ctx.paths.config.read_text(encoding="utf-8")
    bad = good.replace("block_timeout: 24h", "block_timeout: 24 hours").replace(
        "  port: 443", "  port: 99999"
    )
    r = client.post("/settings/edit", data={"csrf_token": token, "config": bad})
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "期間の形式ではありません" in page and "65535 以下" in page
    bad_line = next(n for n, line in enumerate(bad.split("\n"), 1) if "24 hours" in line)
    assert re.search(rf'<li value="{bad_line}" class="bad">', page)
    changed = good.replace("name: さくら内科クリニック", "name: さくら内科・小児科")
    r = client.post(
        "/settings/edit", data={"csrf_token": token, "config": changed, "comment": "医院名の変更"}
    )
    review = r.headers["Location"]
    assert "/settings/review/" in review
    page = client.get(review).get_data(as_text=True)
    assert "さくら内科・小児科" in page and 'class="add"' in page
    assert client.post(review, data={"csrf_token": token, "decision": "apply"}).status_code == 302
    assert "さくら内科・小児科" in box.ctx.paths.config.read_text(encoding="utf-8")
    history = client.get("/settings/").get_data(as_text=True)
    assert "医院名の変更" in history
    first_rev = (
        int(re.search(r"/settings/rollback/(\d+)", history).group(1)) if "rollback" in history else None
    )
    if first_rev is None:  # the first apply through Mamori has no earlier revision; apply once more
        client.post(client.post("/settings/edit", data={"csrf_token": token, "config": good}).headers["Location"],
                    data={"csrf_token": token, "decision": "apply"})  # fmt: skip
        history = client.get("/settings/").get_data(as_text=True)
        first_rev = int(re.search(r"/settings/rollback/(\d+)", history).group(1))
    r = client.post(f"/settings/rollback/{first_rev}", data={"csrf_token": token})
    client.post(r.headers["Location"], data={"csrf_token": token, "decision": "apply"})
    assert "config.apply" in audit_actions(box, "admin")


def test_vendor_change_via_firewall_page_goes_through_review(box: Box) -> None:
    client = box.client()
    box.login(client, "vendor-fw")
    token = session_token(client)
    r = client.post(
        "/firewall/rules", data={"csrf_token": token, "src": "受付PC", "dst": "PACS", "service": "DICOM"}
    )
    review = r.headers["Location"]
    assert "受付PC" in client.get(review).get_data(as_text=True)
    client.post(review, data={"csrf_token": token, "decision": "apply"})
    cfg = yaml.safe_load(box.ctx.paths.config.read_text(encoding="utf-8"))
    assert {"src": "受付PC", "dst": "PACS", "service": "DICOM"} in cfg["firewall"]["rules"]
    entries = [a for a in audit_actions(box, "vendor-fw") if a.startswith("config.")]
    assert entries == ["config.apply"]
    # A proposal belongs to whoever made it: another account cannot apply it.
    other = box.client()
    box.login(other, "admin")
    r = other.get(review)
    assert r.status_code == 302


def test_devices_csv_neutralises_formulas(box: Box) -> None:
    text = box.ctx.paths.config.read_text(encoding="utf-8").replace(
        "description: 画像サーバー", "description: '=HYPERLINK(\"http://x\")'"
    )
    box.ctx.paths.config.write_text(text, encoding="utf-8")
    client = box.client()
    box.login(client, "admin")
    now = time.time()
    with box.ctx.db.transaction() as conn:  # what the firewall area's inventory records (hostname from DHCP)
        conn.execute(
            "INSERT INTO fw_devices(mac, ip, zone, interface, hostname, vendor, first_seen, last_seen)"
            " VALUES ('52:54:00:12:34:56', '192.168.10.30', 'lan', 'lan0', '=cmd|calc', 'Example Corp', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO fw_devices(mac, ip, zone, interface, hostname, vendor, first_seen, last_seen)"
            " VALUES ('52:54:00:99:99:99', '192.168.10.77', 'lan', 'lan0', '<script>x</script>', '', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO fw_device_events(ts, mac, kind, message_ja, message_en) VALUES (?, '52:54:00:99:99:99',"
            " 'new_device', '新しい機器が接続されました: 52:54:00:99:99:99', 'new device')",
            (now,),
        )
    body = client.get("/devices/export.csv").get_data(as_text=True)
    assert body.startswith("\ufeff名前,IPアドレス")
    assert "'=HYPERLINK" in body and "\n=HYPERLINK" not in body and ",=HYPERLINK" not in body
    assert "'=cmd|calc" in body and ",=cmd" not in body
    lines = body.splitlines()
    assert any(
        line.startswith("PACS,192.168.10.30,52:54:00:12:34:56,Example Corp") for line in lines
    )  # named
    page = client.get("/devices/").get_data(as_text=True)
    assert "（名前なし）" in page and "<script>x" not in page and "&lt;script&gt;x" in page
    dashboard = client.get("/").get_data(as_text=True)
    assert "52:54:00:99:99:99" in dashboard and "初めて見る機器" in dashboard


def test_audit_page_shows_integrity(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    page = client.get("/audit/").get_data(as_text=True)
    assert "改ざんされていません" in page and "ログイン" in page
    with box.ctx.db.transaction() as conn:
        conn.execute("UPDATE audit SET actor = 'someone-else' WHERE id = 1")
    page = client.get("/audit/?q=web.login").get_data(as_text=True)
    assert "書き換えられています" in page
    box.clock.advance(61)  # the dashboard re-checks the chain at most once a minute
    assert "要対応" in client.get("/").get_data(as_text=True)


def test_vpn_device_qr_is_shown_once_and_vendor_window_is_approved(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    token = session_token(client)
    r = client.post("/vpn/devices", data={"csrf_token": token, "user": "yamada", "device": "iPhone"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "<svg" in page and "PrivateKey" in page and "[Peer]" in page
    assert r.headers["Cache-Control"] == "no-store"
    listing = client.get("/vpn/").get_data(as_text=True)
    assert "iPhone" in listing and "PrivateKey" not in listing  # the key is never shown again
    assert "admin（管理者）" in listing and "医師" in listing
    with box.ctx.db.transaction() as conn:  # one finished session, as the VPN area records it
        conn.execute(
            "INSERT INTO vpn_sessions(user, tunnel_ip, started, expires, ended, end_reason, remote)"
            " VALUES ('yamada', '10.99.0.2', ?, ?, ?, 'expired', '198.51.100.20')",
            (time.time() - 7200, time.time() - 3600, time.time() - 3600),
        )
    listing = client.get("/vpn/").get_data(as_text=True)
    assert "最近の接続の記録" in listing and "時間切れ" in listing and "198.51.100.20" in listing
    r = client.post("/vpn/windows", data={"csrf_token": token, "user": "vendor-a", "hours": "2",
                                          "reason": "電子カルテの更新", "targets": "電子カルテ"})  # fmt: skip
    assert r.status_code == 302
    listing = client.get("/vpn/").get_data(as_text=True)
    assert "電子カルテの更新" in listing and "取り消す" in listing
    assert {"vpn.device_added", "vpn.window_approved"} <= set(audit_actions(box, "admin"))
    r = client.post("/vpn/windows", data={"csrf_token": token, "user": "vendor-a", "hours": "2", "reason": "",
                                          "targets": "電子カルテ"})  # fmt: skip
    assert "理由" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_vpn_user_is_added_through_the_review_page(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    token = session_token(client)
    r = client.post("/vpn/users", data={"csrf_token": token, "name": "suzuki", "role": "doctor",
                                        "display_name": "鈴木 医師", "dst": "電子カルテ", "service": "HTTPS"})  # fmt: skip
    review = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "suzuki" in review and 'class="add"' in review
    client.post(r.headers["Location"], data={"csrf_token": token, "decision": "apply"})
    assert "suzuki" in box.ctx.paths.config.read_text(encoding="utf-8")


def test_certificate_upload_checks_the_key(box: Box, tmp_path: Path) -> None:
    import io

    from webui.tls import ensure_certificate

    first = ensure_certificate(tmp_path / "a")
    second = ensure_certificate(tmp_path / "b")
    client = box.client()
    box.login(client, "admin")
    token = session_token(client)

    def upload(cert: Path, key: Path) -> int:
        data = {"csrf_token": token, "cert": (io.BytesIO(cert.read_bytes()), "web.crt"),
                "key": (io.BytesIO(key.read_bytes()), "web.key")}  # fmt: skip
        return client.post("/settings/certificate", data=data, content_type="multipart/form-data").status_code

    assert upload(first[0], second[1]) == 400  # key of another certificate
    assert upload(first[0], first[1]) == 302
    installed = box.ctx.paths.keys_dir / "web.crt"
    assert installed.read_bytes() == first[0].read_bytes()
    assert (box.ctx.paths.keys_dir / "web.key").stat().st_mode & 0o037 == 0  # group: read only
    assert "web.certificate_replaced" in audit_actions(box, "admin")


def test_notification_test_button_really_sends(box: Box, cert_dir: Path, monkeypatch) -> None:  # noqa: F811
    """A webhook receiver on this machine's loopback (HTTPS, allowed as a private target) gets the test message."""
    import http.server

    from tests.unit.test_notify_channels import https_server, trust

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    trust(monkeypatch, cert_dir)
    server = https_server(Hook, cert_dir)
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/hook"
        text = box.ctx.paths.config.read_text(encoding="utf-8").replace(
            "notifications:\n", f"notifications:\n  webhook: {{url: '{url}', allow_private: true}}\n"
        )
        box.ctx.paths.config.write_text(text, encoding="utf-8")
        client = box.client()
        box.login(client, "admin")
        r = client.post("/settings/notify-test", data={"csrf_token": session_token(client)})
        page = client.get(r.headers["Location"]).get_data(as_text=True)
    finally:
        server.shutdown()
        server.server_close()
    assert received and received[0]["source"] == "mamori" and "テスト" in received[0]["subject"]
    assert "Webhook: 送信しました" in page
    assert "notifications.test" in audit_actions(box, "admin")


def test_unexpected_error_is_a_calm_japanese_page(tmp_path: Path) -> None:
    b = make_box(tmp_path)
    b.add("admin", "admin")

    def broken() -> str:
        raise RuntimeError("secret internal detail")

    b.app.add_url_rule("/broken", "dashboard.broken", broken)
    client = b.client()
    b.login(client, "admin")
    r = client.get("/broken")
    page = r.get_data(as_text=True)
    assert r.status_code == 500 and "うまくいきませんでした" in page
    assert "secret internal detail" not in page and "Traceback" not in page


def test_an_upload_is_refused_before_it_could_fill_the_state_disk() -> None:
    from webui.app import UPLOAD_SPACE_MARGIN, upload_fits

    gib = 1024**3
    assert upload_fits(gib, 2 * gib)
    assert not upload_fits(gib, gib + UPLOAD_SPACE_MARGIN - 1)
    assert upload_fits(None, 0)  # unknown length: the per-route limits bound it
