"""Role × config section × way of changing, through the web UI (security review High 1: a vendor with the
設定 grant could enable maintenance SSH with his own key, make his VPN user staff, point the notification
channels at his own server...).

Ways: the raw editor (/settings/edit), the area's own form where there is one (SSH, VPN users, firewall
rules), rollback to an old revision (/settings/rollback/<n>). The same table runs through
ConfigService.apply directly in tests/unit/test_config_authority.py. Allowed -> the change is live;
refused -> the live revision is the same one and the refusal is in the audit log (config.refused when the
section was the problem, web.forbidden when the page itself was).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.audit import AuditLog
from appliance.config.load import parse_config
from appliance.service import ConfigService
from tests.unit.test_config_authority import (
    ALLOWED,
    ROLES,
    SECTIONS,
    baseline_data,
    changed_text,
    dump,
    rights,
)
from tests.unit.test_ssh_render import KEY_ED25519
from tests.webui_fixtures import Box, make_box, session_token

REFUSALS = ("config.refused", "web.forbidden")


@pytest.fixture(scope="module")
def abox(tmp_path_factory: pytest.TempPathFactory) -> Box:
    """One box for the table (Argon2id makes sign-in deliberately slow): one account per role, signed in."""
    b = make_box(tmp_path_factory.mktemp("authority"))
    for name, (role, grants) in ROLES.items():
        b.add(name, role, grants=grants)
    b.clients = {}  # type: ignore[attr-defined]
    for name in ROLES:
        client = b.client()
        b.login(client, name)
        b.clients[name] = client  # type: ignore[attr-defined]
    return b


def svc(box: Box) -> ConfigService:
    return ConfigService(box.ctx, subsystems=[])


def reset(box: Box) -> int:
    """The baseline is live, applied as root (as the CLI would); returns its revision id and audit mark."""
    return svc(box).apply(dump(baseline_data()), "root", "cli", "baseline").id


def audit_mark(box: Box) -> int:
    entries = AuditLog(box.ctx.db).search(limit=1)
    return entries[0].id if entries else 0


def actions_since(box: Box, mark: int, actor: str) -> list[str]:
    return [e.action for e in AuditLog(box.ctx.db).search(actor=actor, limit=200) if e.id > mark]


def model(text: str) -> Any:
    return parse_config(text).model


def post(client: FlaskClient, path: str, **data: str) -> Any:
    return client.post(path, data={"csrf_token": session_token(client), **data})


def finish(client: FlaskClient, r: Any) -> Any:
    """Follow a proposal to the review page and apply it; other answers are returned as they are."""
    if r.status_code == 302 and "/settings/review/" in r.headers["Location"]:
        return post(client, r.headers["Location"], decision="apply")
    return r


def allowed(role: str, section: str, page_permission: str) -> bool:
    """The section is the role's to change, and the way of changing it is a page the role may open."""
    return section in ALLOWED[role] and page_permission in rights(role)


def assert_outcome(box: Box, role: str, section: str, ok: bool, live_id: int, mark: int, r: Any) -> None:
    live = svc(box).current()
    if ok:
        assert r.status_code == 302 and r.headers["Location"].endswith("/settings/status"), r.status_code
        assert live.id != live_id and live.author == role
        assert model(live.config_text) == model(changed_text(section))
        return
    assert live.id == live_id, f"{role} changed {section}"
    assert box.ctx.paths.config.read_text(encoding="utf-8") == live.config_text
    refusals = [a for a in actions_since(box, mark, role) if a in REFUSALS]
    assert refusals, actions_since(box, mark, role)
    if refusals[0] == "config.refused":  # the page was allowed, the section was not: say so in Japanese
        page = r.get_data(as_text=True) if r.status_code != 302 else ""
        if r.status_code == 302:
            page = box.clients[role].get(r.headers["Location"]).get_data(as_text=True)  # type: ignore[attr-defined]
        assert "権限がありません。管理者に依頼してください。" in page
    else:
        assert r.status_code == 403


CASES = [(role, section) for role in ROLES for section in SECTIONS]
IDS = [f"{r}-{s}" for r, s in CASES]


@pytest.mark.parametrize(("role", "section"), CASES, ids=IDS)
def test_raw_editor(abox: Box, role: str, section: str) -> None:
    live_id, mark = reset(abox), audit_mark(abox)
    client = abox.clients[role]  # type: ignore[attr-defined]
    r = finish(client, post(client, "/settings/edit", config=changed_text(section), comment=section))
    assert_outcome(abox, role, section, allowed(role, section, "settings.edit"), live_id, mark, r)


@pytest.mark.parametrize(("role", "section"), CASES, ids=IDS)
def test_rollback_to_an_old_revision(abox: Box, role: str, section: str) -> None:
    old = svc(abox).apply(changed_text(section), "root", "cli", "earlier").id
    live_id, mark = reset(abox), audit_mark(abox)
    client = abox.clients[role]  # type: ignore[attr-defined]
    r = finish(client, post(client, f"/settings/rollback/{old}"))
    assert_outcome(abox, role, section, allowed(role, section, "settings.edit"), live_id, mark, r)


# section -> (the area's own form, its fields, the permission the form's page needs)
FORMS: dict[str, tuple[str, dict[str, str], str]] = {
    "ssh": ("/settings/ssh", {"enabled": "on", "keys": KEY_ED25519}, "ssh.manage"),
    "vpn_new_user": ("/vpn/users", {"name": "helper", "role": "staff", "dst": "lan"}, "vpn.edit"),
    "firewall_rule": (
        "/firewall/rules",
        {"src": "受付PC", "dst": "PACS", "service": "HTTPS"},
        "firewall.edit",
    ),
}
FORM_CASES = [(role, section) for role in ROLES for section in FORMS]


@pytest.mark.parametrize(("role", "section"), FORM_CASES, ids=[f"{r}-{s}" for r, s in FORM_CASES])
def test_the_area_form(abox: Box, role: str, section: str) -> None:
    live_id, mark = reset(abox), audit_mark(abox)
    client = abox.clients[role]  # type: ignore[attr-defined]
    path, fields, page_permission = FORMS[section]
    r = finish(client, post(client, path, **fields))
    assert_outcome(abox, role, section, allowed(role, section, page_permission), live_id, mark, r)


def test_a_stale_proposal_cannot_undo_what_the_administrator_changed_since(abox: Box) -> None:
    """The check that matters is at apply time: the vendor's proposal (clinic name, allowed) was made before
    the administrator switched SSH on; applying it now would switch SSH off again, so it is refused."""
    reset(abox)
    client = abox.clients["vendor-settings"]  # type: ignore[attr-defined]
    r = post(client, "/settings/edit", config=changed_text("clinic_name"), comment="name")
    assert r.status_code == 302 and "/settings/review/" in r.headers["Location"]
    data = baseline_data()
    data["ssh"] = {"enabled": True, "authorized_keys": [KEY_ED25519]}
    live_id = svc(abox).apply(dump(data), "root", "cli", "ssh on for the vendor's visit").id
    mark = audit_mark(abox)
    review = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "保守用の遠隔ログイン（ssh）を変える権限がありません" in review
    applied = post(client, r.headers["Location"], decision="apply")
    assert applied.status_code == 403
    assert "保守用の遠隔ログイン（ssh）を変える権限がありません" in applied.get_data(as_text=True)
    assert svc(abox).current().id == live_id
    entry = next(e for e in AuditLog(abox.ctx.db).search(actor="vendor-settings", limit=20) if e.id > mark
                 and e.action == "config.refused")  # fmt: skip
    assert entry.detail["missing"] == ["ssh.manage"] and "ssh.enabled" in entry.detail["paths"]


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/settings/notify-test"), ("GET", "/settings/certificate")]
)
def test_notification_test_and_certificate_are_not_for_the_settings_grant(
    abox: Box, method: str, path: str
) -> None:
    """The test sends the channels' secrets to the hosts the config names; the certificate's key reads
    every sign-in. Both need the administrator (notifications.manage / web.manage), not 設定."""
    for role, refused in (("vendor-settings", True), ("viewer", True), ("admin", False)):
        client = abox.clients[role]  # type: ignore[attr-defined]
        mark = audit_mark(abox)
        r = client.get(path) if method == "GET" else post(client, path)
        assert (r.status_code == 403) is refused, (role, r.status_code)
        assert ("web.forbidden" in actions_since(abox, mark, role)) is refused


@pytest.mark.parametrize("name", ["vendor-vpn", "dr-sato"], ids=["himself", "someone-else"])
def test_a_vendor_with_the_vpn_grant_cannot_add_a_doctor(abox: Box, name: str) -> None:
    """Issue 18 review: a doctor needs no maintenance window, so a vendor adding a doctor VPN user (named as
    himself, or anyone he hands the key to) would have round-the-clock access. /vpn/users only needs
    vpn.edit to open; the new user needs vpn.users, which the VPN grant does not give: refused when the
    form is sent (no proposal for the review page), audited, said in Japanese; the administrator's same
    form works."""
    fields = {"name": name, "role": "doctor", "dst": "lan"}
    live_id, mark = reset(abox), audit_mark(abox)
    client = abox.clients["vendor-vpn"]  # type: ignore[attr-defined]
    r = finish(client, post(client, "/vpn/users", **fields))
    assert r.status_code == 302 and "/settings/" not in r.headers["Location"]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "VPN 利用者の役割・時間帯・アクセス先（vpn.users）を変える権限がありません" in page
    live = svc(abox).current()
    assert live.id == live_id and name not in {u.name for u in model(live.config_text).vpn.users}
    assert abox.ctx.paths.config.read_text(encoding="utf-8") == live.config_text
    entry = next(e for e in AuditLog(abox.ctx.db).search(actor="vendor-vpn", limit=20) if e.id > mark
                 and e.action == "config.refused")  # fmt: skip
    assert entry.detail["paths"] == [f"vpn.users.{name}"] and entry.detail["missing"] == ["vpn.users"]

    admin = abox.clients["admin"]  # type: ignore[attr-defined]
    assert finish(admin, post(admin, "/vpn/users", **fields)).headers["Location"].endswith("/settings/status")
    assert {u.name: u.role for u in model(svc(abox).current().config_text).vpn.users}[name] == "doctor"
