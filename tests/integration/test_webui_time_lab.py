"""設定 → 時刻 with nothing faked: in the lab, a chronyd on the internet-side server is the upstream, the real
`mamori daemon` runs the box's chronyd, and once it has synchronised the web UI (real app on the box's
state directory, real sign-in with TOTP) says 同期しています with that server and the offset. When chronyd
is stopped the page says it cannot tell, not a remembered state."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyotp
import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.box import Box
from tests.integration.test_firewall_helpers import wait_until
from tests.integration.test_ntp_lab import UPSTREAM, start_upstream, status, stop_all
from tests.webui_fixtures import PASSWORD, csrf
from webui import create_app
from webui.accounts import AccountStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("chronyd") is None, reason="chrony is not installed"),
    pytest.mark.timeout(240),
]


def signed_in_admin(ctx: Context):
    app = create_app(ctx, testing=True, confirm_seconds=None)
    secret = pyotp.random_base32()
    AccountStore(ctx.db).create("incho", PASSWORD, "admin", totp_secret=secret)
    client = app.test_client()
    client.post(
        "/login", data={"csrf_token": csrf(client, "/login"), "username": "incho", "password": PASSWORD}
    )
    r = client.post(
        "/login/totp", data={"csrf_token": csrf(client, "/login/totp"), "code": pyotp.TOTP(secret).now()}
    )
    assert r.status_code == 302 and "/login" not in r.headers["Location"]
    return client


def test_time_page_shows_the_real_chronyd_state(box: Box, tmp_path: Path) -> None:
    ctx = Context(
        paths=Paths(config=box.config, state_dir=box.state_dir),
        db=Database(Paths(config=box.config, state_dir=box.state_dir).db),
    )
    start_upstream(box, tmp_path)
    box.start_daemon()
    try:
        assert wait_until(lambda: status(box).get("synchronised") is True, timeout=60, step=1) is not None
        client = signed_in_admin(ctx)
        page = client.get("/settings/time").get_data(as_text=True)
        assert "同期しています" in page and f"基準にしている時刻サーバー: {UPSTREAM}" in page, page
        assert "ミリ秒" in page or " 秒" in page
        assert time.strftime("%Y年") in page and "日本時間（Asia/Tokyo）" in page
        stop_all(box)  # daemon and chronyd gone: the page cannot tell, and says so
        page = client.get("/settings/time").get_data(as_text=True)
        assert "同期しているかどうか分かりません" in page and "同期しています。" not in page
    finally:
        stop_all(box)
