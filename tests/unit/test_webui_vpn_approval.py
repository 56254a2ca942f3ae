"""VPN page: a vendor account that holds vpn.edit (the clinic granted him the VPN area) must never widen
its own access (MHLW guideline: the vendor link is how ransomware gets in). He cannot approve a
maintenance window (his own or anyone's) and cannot issue or re-issue another person's device (which
would revoke a doctor's key). Each refusal is in Japanese, audited, and changes nothing. The clinic's
administrator still can, except approving a window for a VPN user of his own name."""

from __future__ import annotations

import pytest

from tests.webui_fixtures import Box, audit_actions, make_box, session_token
from vpn.store import DeviceStore
from vpn.windows import WindowError, WindowStore

WINDOW = {"user": "vendor-a", "hours": "2", "reason": "電子カルテの更新", "targets": "電子カルテ"}


@pytest.fixture(name="vbox")
def vbox_fixture(tmp_path) -> Box:
    """The example clinic (VPN users yamada, a doctor, and vendor-a) with an admin and two vendor accounts
    granted the VPN area: vendor-a (the VPN user's own web account) and vendor-b (another vendor)."""
    b = make_box(tmp_path)
    b.add("admin", "admin")
    b.add("vendor-a", "vendor", grants=("vpn",))
    b.add("vendor-b", "vendor", grants=("vpn",))
    return b


def _client(box: Box, name: str):
    client = box.client()
    box.login(client, name)
    return client, session_token(client)


def _flash(client, r) -> str:
    assert r.status_code == 302
    return client.get(r.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize("vendor", ["vendor-a", "vendor-b"])
def test_a_vendor_cannot_approve_a_maintenance_window(vbox: Box, vendor: str) -> None:
    client, token = _client(vbox, vendor)
    page = client.get("/vpn/").get_data(as_text=True)
    assert "作業の時間帯を承認する" not in page and "管理者が行います" in page
    r = client.post("/vpn/windows", data={"csrf_token": token, **WINDOW})
    assert "医院の管理者だけができます" in _flash(client, r)
    assert WindowStore(vbox.ctx.db).list() == []
    assert "vpn.window_refused" in audit_actions(vbox, vendor)
    assert "vpn.window_approved" not in audit_actions(vbox)


def test_the_administrator_approves_but_never_for_a_vpn_user_of_his_own_name(tmp_path) -> None:
    box = make_box(tmp_path)
    box.add("admin", "admin")
    box.add("vendor-a", "admin")  # the vendor's own account made an administrator: still not his own approver
    client, token = _client(box, "admin")
    r = client.post("/vpn/windows", data={"csrf_token": token, **WINDOW})
    assert "承認しました" in _flash(client, r)
    assert [w.approved_by for w in WindowStore(box.ctx.db).list()] == ["admin"]
    client, token = _client(box, "vendor-a")
    r = client.post("/vpn/windows", data={"csrf_token": token, **WINDOW})
    assert "自分で承認することはできません" in _flash(client, r)
    assert len(WindowStore(box.ctx.db).list()) == 1
    assert "vpn.window_refused" in audit_actions(box, "vendor-a")


def test_the_window_store_refuses_self_approval_whoever_calls_it(vbox: Box) -> None:
    store = WindowStore(vbox.ctx.db)
    with pytest.raises(WindowError) as exc:
        store.approve_next("vendor-a", 2, "更新", ["電子カルテ"], "vendor-a")
    assert exc.value.code == "vpn.window_self_approval" and "自分で承認" in exc.value.text("ja")
    assert store.list() == []


def test_a_vendor_cannot_reissue_or_add_a_doctors_device(vbox: Box) -> None:
    admin, token = _client(vbox, "admin")
    r = admin.post("/vpn/devices", data={"csrf_token": token, "user": "yamada", "device": "iPhone"})
    assert r.status_code == 200 and "PrivateKey" in r.get_data(as_text=True)
    (doctors,) = DeviceStore(vbox.ctx.db).active("yamada")
    client, token = _client(vbox, "vendor-b")
    page = client.get("/vpn/").get_data(as_text=True)
    assert 'value="yamada"><input name="device"' not in page  # no device form on the doctor's row
    for device in ("iPhone", "vendor-laptop"):  # a re-issue (revokes his key) and a new device of his
        r = client.post("/vpn/devices", data={"csrf_token": token, "user": "yamada", "device": device})
        page = _flash(client, r)
        assert (
            "PrivateKey" not in page and "ほかの方の機器の追加や再発行は、医院の管理者だけができます" in page
        )
    assert DeviceStore(vbox.ctx.db).all("yamada") == [doctors]  # still active, same key, nothing added
    assert audit_actions(vbox, "vendor-b").count("vpn.device_refused") == 2
    assert "vpn.device_added" not in audit_actions(vbox, "vendor-b")


def test_a_vendor_may_reissue_a_device_of_his_own_vpn_user(vbox: Box) -> None:
    client, token = _client(vbox, "vendor-a")
    r = client.post("/vpn/devices", data={"csrf_token": token, "user": "vendor-a", "device": "laptop"})
    assert r.status_code == 200 and "PrivateKey" in r.get_data(as_text=True)
    assert [d.device for d in DeviceStore(vbox.ctx.db).active("vendor-a")] == ["laptop"]
