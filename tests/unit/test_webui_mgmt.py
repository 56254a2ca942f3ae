"""設定 → 保守業者の管理接続 with the Flask test client: a vendor's code is decoded and its hub key
fingerprint shown; nothing is proposed until the administrator ticks that it matches; the change goes
through the review page (only the `mgmt:` section changes) and the audit log; 「切る」 takes the link off at
once (audited, config change); a vendor, even with every grant, cannot open the page. The tunnel itself is
tested in tests/long/test_mgmt_lab.py."""

from __future__ import annotations

import yaml

from mgmt.code import fingerprint, make_code
from tests.unit.test_mgmt_config import HUB_KEY
from tests.webui_fixtures import Box, audit_actions, box_fixture, session_token  # noqa: F401

CODE = make_code("hub.example.jp:51820", HUB_KEY, "10.77.0.0/16", "10.77.0.17", ["10.77.0.1"])


def _post(client, path: str, **data: str):
    return client.post(path, data={"csrf_token": session_token(client), **data})


def test_enrol_with_fingerprint_check_then_review_then_cut(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    assert "保守業者の管理接続" in client.get("/settings/").get_data(as_text=True)
    page = client.get("/settings/mgmt/").get_data(as_text=True)
    assert "使っていません" in page and "院内のパソコン・電子カルテ・医療機器には" in page
    assert "保守業者の管理接続を切る" not in page

    shown = _post(client, "/settings/mgmt/decode", code=CODE.lower()).get_data(as_text=True)
    assert fingerprint(HUB_KEY) in shown and "hub.example.jp:51820" in shown and "10.77.0.17" in shown
    # not ticked: nothing proposed
    r = _post(client, "/settings/mgmt/approve", code=CODE)
    assert r.status_code == 400 and "一致することを確認してから" in r.get_data(as_text=True)
    assert "mgmt.enrol_approved" not in audit_actions(box, "admin")

    before = box.ctx.paths.config.read_text(encoding="utf-8")
    r = _post(client, "/settings/mgmt/approve", code=CODE, fingerprint_ok="on")
    assert r.status_code == 302 and "/settings/review/" in r.headers["Location"], r.get_data(as_text=True)
    review = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "hub.example.jp:51820" in review and fingerprint(HUB_KEY) in review
    r = _post(client, r.headers["Location"], decision="apply")
    assert r.status_code == 302
    after = box.ctx.paths.config.read_text(encoding="utf-8")
    assert after.split("\nmgmt:")[0].rstrip() == before.rstrip()  # only the mgmt section was added
    mgmt = yaml.safe_load(after)["mgmt"]
    assert mgmt["enabled"] is True and mgmt["hub_public_key"] == HUB_KEY and mgmt["address"] == "10.77.0.17"
    assert {"mgmt.enrol_approved", "config.apply"} <= set(audit_actions(box, "admin"))

    from appliance.audit import AuditLog

    log = AuditLog(box.ctx.db, box.ctx.paths.keys_dir / "audit.key")
    log.record("vendor-hub", "auth.login", {}, "web", "10.77.0.1")  # from the hub over the link
    log.record("mgmt-link", "mgmt.link_up", {}, "mgmt")  # the daemon's watcher
    log.record("受付", "auth.login_from_lan", {}, "web", "192.168.10.20")  # not the hub's doing
    page = client.get("/settings/mgmt/").get_data(as_text=True)
    assert "有効ですが、いまはつながっていません" in page and fingerprint(HUB_KEY) in page
    activity = page.split('id="mgmt-activity"')[1].split("</table>")[0]
    assert "vendor-hub" in activity and "mgmt.link_up" in activity and "login_from_lan" not in activity
    assert "保守業者の管理接続を切る" in page

    r = _post(client, "/settings/mgmt/cut")
    assert r.status_code == 302
    assert yaml.safe_load(box.ctx.paths.config.read_text(encoding="utf-8"))["mgmt"]["enabled"] is False
    actions = audit_actions(box, "admin")
    assert actions[:2] == ["config.apply", "mgmt.cut"]  # newest first: cut, then the config change
    page = client.get("/settings/mgmt/").get_data(as_text=True)
    assert "使っていません" in page and "保守業者の管理接続を切りました" in page


def test_bad_code_is_refused_in_japanese_and_escaped(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    r = _post(client, "/settings/mgmt/decode", code="<script>x</script>")
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "登録コードが正しくありません" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    i = next(i for i in range(40, len(CODE)) if CODE[i].isalpha())  # a letter, not a group's dash
    broken = CODE[:i] + ("A" if CODE[i] != "A" else "B") + CODE[i + 1 :]
    r = _post(client, "/settings/mgmt/approve", code=broken, fingerprint_ok="on")
    assert r.status_code == 400 and "打ち間違い" in r.get_data(as_text=True)


def test_vendor_and_staff_cannot_open_or_cut(box: Box) -> None:
    box.add("vendor-all", "vendor", grants=("firewall", "vpn", "settings", "audit", "alerts", "devices"))
    for name in ("vendor-all", "vendor-none", "staff"):
        client = box.client()
        box.login(client, name)
        assert client.get("/settings/mgmt/").status_code == 403
        assert _post(client, "/settings/mgmt/cut").status_code == 403
        assert _post(client, "/settings/mgmt/approve", code=CODE, fingerprint_ok="on").status_code == 403
    assert "mgmt.cut" not in audit_actions(box)
