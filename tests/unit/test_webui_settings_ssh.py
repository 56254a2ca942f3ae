"""設定 → 保守用の遠隔ログイン（SSH） with the Flask test client: off by default; switching it on with a
pasted key goes through the review page (only the `ssh:` section changes) and the audit log; the key's
fingerprint is shown; a bad key is refused in Japanese before any proposal; what the user typed is escaped.

sshd itself runs in tests/integration/test_ssh_lab.py.
"""

from __future__ import annotations

import yaml

from tests.unit.test_ssh_render import KEY_ECDSA, KEY_ED25519
from tests.webui_fixtures import Box, audit_actions, box_fixture, session_token  # noqa: F401

ED25519_FP = "SHA256:iJQc/fX8IJDggHK0u+ct1wJ45ns1IAM9vRB33NzIqAo"  # ssh-keygen -lf of KEY_ED25519


def _change(box: Box, client, enabled: bool, keys: str):
    data = {"csrf_token": session_token(client), "keys": keys}
    if enabled:
        data["enabled"] = "on"
    return client.post("/settings/ssh", data=data)


def test_off_by_default_then_enabled_through_review_and_audited(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    page = client.get("/settings/ssh").get_data(as_text=True)
    assert (
        "無効です" in page
        and "「院内」と「管理用」のネットワークからだけ" in page
        and "パスワードでのログインもできません" in page
    )
    assert "<code>192.168.10.1</code>" in page and "203.0.113.2" not in page  # lan only, never wan
    assert "保守用の遠隔ログイン（SSH）" in client.get("/settings/").get_data(as_text=True)

    before = box.ctx.paths.config.read_text(encoding="utf-8")
    r = _change(box, client, True, f"{KEY_ED25519}\r\n\r\n# 山田さんの鍵\n{KEY_ECDSA}\n")
    assert r.status_code == 302 and "/settings/review/" in r.headers["Location"], r.get_data(as_text=True)
    review = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "+  enabled: true" in review and "SSH" in review
    r = client.post(r.headers["Location"], data={"csrf_token": session_token(client), "decision": "apply"})
    assert r.status_code == 302
    after = box.ctx.paths.config.read_text(encoding="utf-8")
    assert after.split("\nssh:")[0] == before.split("\nssh:")[0]  # everything above the section untouched
    ssh = yaml.safe_load(after)["ssh"]
    assert ssh == {"enabled": True, "authorized_keys": [KEY_ED25519, KEY_ECDSA]}
    assert "config.apply" in audit_actions(box, "admin")

    page = client.get("/settings/ssh").get_data(as_text=True)
    assert "有効です" in page and ED25519_FP in page and "vendor-a@example" in page

    same = _change(box, client, True, f"{KEY_ED25519}\n{KEY_ECDSA}")
    assert same.headers["Location"].endswith("/settings/ssh")  # nothing to change: no proposal
    off = _change(box, client, False, "")
    assert "/settings/review/" in off.headers["Location"]


def test_bad_keys_are_refused_in_japanese_and_escaped(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    r = _change(box, client, True, "<script>alert(1)</script> ssh-ed25519 AAAA")
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "公開鍵の形式が正しくありません" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    r = _change(box, client, True, "")
    assert r.status_code == 400 and "公開鍵を1つ以上" in r.get_data(as_text=True)
    r = _change(box, client, True, f'command="/bin/sh" {KEY_ED25519}')
    assert r.status_code == 400 and "オプションは使えません" in r.get_data(as_text=True)
    assert yaml.safe_load(box.ctx.paths.config.read_text(encoding="utf-8"))["ssh"]["enabled"] is False
