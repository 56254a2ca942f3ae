"""Software updates in the lab, nothing faked but the image: the vendor's static HTTPS directory (python's
http.server with TLS and a test CA) on the lab's internet server serves a signed index and a small signed
bundle; the real `mamori daemon` in the box namespace checks it on schedule, downloads, verifies and stages
the bundle, and writes the install request because auto=install and the quiet hours are now. A tampered
bundle and an older signed one are refused and leave staged/ empty; the web UI page shows the available
version. The box's "image" (IMAGE_VERSION, the trusted key) is a directory of the test (MAMORI_UPDATE_ROOT);
the real install and reboot are the image's qemu test (tests/image/test_image_update.py)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import yaml

from appliance.clock import clinic_time
from lab.box import Box
from lab.waiting import wait_for
from tests.updatekit import make_bundle, make_index, make_key, make_tls, server_argv, system_root

pytestmark = pytest.mark.integration

SERVER_IP, PORT = "198.51.100.10", 8443


def _quiet_hours_now() -> str:
    """A two-hour window around now in clinic time (crossing midnight is allowed)."""
    now = clinic_time(None, "Asia/Tokyo")
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.fixture
def vendor(box: Box, tmp_path: Path):
    root = system_root(tmp_path / "image", "2026.12.1")
    key = make_key(root / "usr/share/mamori/update-keys")
    site = tmp_path / "site"
    site.mkdir()
    cert, tls_key = make_tls(tmp_path / "tls", SERVER_IP)
    server = box.lab.spawn(
        "server", server_argv(SERVER_IP, PORT, site, cert, tls_key), log_path=tmp_path / "srv.log"
    )
    data = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    data["update"] = {"source": f"https://{SERVER_IP}:{PORT}/", "ca_file": str(cert), "auto": "install",
                      "quiet_hours": _quiet_hours_now(), "check_interval": "1h"}  # fmt: skip
    box.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    box.mamori("config", "apply", "-m", "update test")
    box.entry = ("env", f"MAMORI_UPDATE_ROOT={root}", sys.executable, "-m", "appliance.cli")
    yield key, site, tmp_path
    box.stop_daemon()
    box.lab.stop(server)


def test_daemon_fetches_verifies_stages_and_requests(box: Box, vendor) -> None:
    key, site, tmp = vendor
    make_index(site, key, make_bundle(tmp / "b" / "mamori-2026.12.2-amd64.tar", key, "2026.12.2",
                                      notes="電子カルテとの通信の記録を改善しました。"), "2026.12.2")  # fmt: skip
    update_dir = box.state_dir / "update"
    box.start_daemon()
    assert wait_for((update_dir / "request.json").exists, 60, step=0.5), (
        box.state_dir / "daemon.log"
    ).read_text()[-3000:]
    request = json.loads((update_dir / "request.json").read_text())
    assert request["bundle"] == "mamori-2026.12.2-amd64.tar" and request["reboot"] == "now"
    assert request["requested_by"] == "system"
    assert [p.name for p in (update_dir / "staged").iterdir()] == ["mamori-2026.12.2-amd64.tar"]
    assert list((update_dir / "incoming").iterdir()) == []
    audit = box.mamori("audit", "list", "--search", "update.").stdout
    for action in ("update.check", "update.staged", "update.requested"):
        assert action in audit, audit
    status = json.loads(box.mamori("update", "status", "--json").stdout)
    assert status["staged"]["version"] == "2026.12.2" and status["in_progress"]["id"] == request["id"]
    box.stop_daemon()

    # The web UI page (the app on the box's state) shows the available version and its notes.
    page = _update_page(box)
    assert "2026.12.2" in page and "電子カルテとの通信の記録を改善しました" in page and "更新中です" in page


def test_tampered_and_older_bundles_are_refused(box: Box, vendor) -> None:
    key, site, tmp = vendor
    staged = box.state_dir / "update" / "staged"
    make_index(site, key, make_bundle(tmp / "b" / "mamori-2026.12.2-amd64.tar", key, "2026.12.2", tamper=True),
               "2026.12.2")  # fmt: skip
    res = box.mamori("update", "check", check=False)
    assert res.returncode == 1 and "署名された内容と一致しません" in res.stderr, res.stderr
    assert list(staged.iterdir()) == []
    older = make_bundle(tmp / "b" / "mamori-2026.11.1-amd64.tar", key, "2026.11.1")
    make_index(site, key, older, "2026.11.1")
    res = box.mamori("update", "check")
    assert "最新の版です" in res.stdout
    res = box.mamori("--lang", "en", "update", "install", str(older), check=False)
    assert res.returncode == 1 and "a downgrade is refused" in res.stderr, res.stderr
    stranger = make_key(tmp / "stranger")
    res = box.mamori("update", "install", str(make_bundle(tmp / "s.tar", stranger, "2026.12.3")), check=False)
    assert res.returncode == 1 and "署名を確認できませんでした" in res.stderr
    assert list(staged.iterdir()) == [] and not (box.state_dir / "update" / "request.json").exists()
    audit = box.mamori("audit", "list", "--search", "update.refused").stdout
    assert audit.count("update.refused") == 2


def _update_page(box: Box) -> str:
    """Sign in as a new administrator on the web app over the box's state and read 「ソフトウェア更新」."""
    import os

    import pyotp

    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context
    from tests.webui_fixtures import PASSWORD, csrf
    from webui import create_app
    from webui.accounts import AccountStore

    paths = Paths(box.config, box.state_dir)
    ctx = Context(paths, Database(paths.db))
    app = create_app(ctx, testing=True, subsystems=[])
    secret = pyotp.random_base32()
    AccountStore(ctx.db).create("inspector", PASSWORD, "admin", totp_secret=secret)
    client = app.test_client()
    client.post("/login", data={"csrf_token": csrf(client, "/login"), "username": "inspector",
                                "password": PASSWORD})  # fmt: skip
    client.post(
        "/login/totp", data={"csrf_token": csrf(client, "/login/totp"), "code": pyotp.TOTP(secret).now()}
    )
    old = os.environ.get("MAMORI_UPDATE_ROOT")
    os.environ["MAMORI_UPDATE_ROOT"] = box.entry[1].split("=", 1)[1]
    try:
        return client.get("/update/").get_data(as_text=True)
    finally:
        if old is None:
            os.environ.pop("MAMORI_UPDATE_ROOT", None)
        else:
            os.environ["MAMORI_UPDATE_ROOT"] = old
