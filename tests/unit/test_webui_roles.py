"""Role × route: every route of the web UI for every role. What is forbidden is refused with 403 and the
refusal is written to the audit log; what is allowed is not refused. A route added without an entry here
fails `test_every_route_is_in_the_table`."""

from __future__ import annotations

import time

import pytest

from tests.webui_fixtures import Box, audit_actions, box_fixture, make_box, session_token  # noqa: F401

A, S, VF, VN = (
    "admin",
    "staff",
    "vendor-fw",
    "vendor-none",
)  # vendor-fw holds firewall+alerts; vendor-none nothing
ALL = (A, S, VF, VN)

# (method, path, endpoint, roles allowed)
TABLE: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("GET", "/", "dashboard.index", ALL),
    ("GET", "/me", "auth.me", ALL),
    ("GET", "/alerts/", "alerts.index", (A, S, VF)),
    ("GET", "/alerts/1", "alerts.detail", (A, S, VF)),
    ("POST", "/alerts/1/ack", "alerts.act", (A, S, VF)),
    ("POST", "/alerts/1/resolve", "alerts.act", (A, VF)),
    ("POST", "/alerts/1/block", "alerts.act", (A, VF)),
    ("GET", "/firewall/", "firewall.index", (A, VF)),
    ("POST", "/firewall/rules", "firewall.add_rule", (A, VF)),
    ("POST", "/firewall/rules/0/delete", "firewall.delete_rule", (A, VF)),
    ("POST", "/firewall/blocks/unblock", "firewall.unblock", (A, VF)),
    ("GET", "/vpn/", "vpn.index", (A,)),
    ("POST", "/vpn/devices", "vpn.add_device", (A,)),
    ("POST", "/vpn/users", "vpn.add_user", (A,)),
    ("POST", "/vpn/windows", "vpn.approve_window", (A,)),
    ("POST", "/vpn/windows/1/cancel", "vpn.cancel_window", (A,)),
    ("GET", "/vpn/windows/1/report", "vpn.window_report", (A,)),
    ("GET", "/vpn/users/yamada/log", "vpn.peer_log_page", (A,)),
    ("GET", "/devices/", "devices.index", (A,)),
    ("GET", "/devices/export.csv", "devices.export", (A,)),
    ("GET", "/settings/", "settings.index", (A,)),
    ("GET", "/settings/edit", "settings.edit", (A,)),
    ("POST", "/settings/edit", "settings.edit", (A,)),
    ("GET", "/settings/status", "settings.status", (A, VF)),
    ("POST", "/settings/confirm", "settings.confirm", (A, VF)),
    ("POST", "/settings/rollback/1", "settings.rollback", (A,)),
    ("POST", "/settings/notify-test", "settings.notify_test", (A,)),
    ("GET", "/settings/certificate", "settings.certificate", (A,)),
    ("POST", "/settings/certificate", "settings.certificate", (A,)),
    ("GET", "/settings/ids", "settings.ids", (A,)),
    ("POST", "/settings/ids/profile", "settings.ids_profile", (A,)),
    ("POST", "/settings/ids/rules", "settings.ids_rules", (A,)),  # 管理者 only, never granted to a vendor
    ("GET", "/settings/time", "settings.time_page", (A,)),
    ("GET", "/settings/ssh", "settings.ssh_page", (A,)),  # a root shell: 管理者 only, never a vendor
    ("POST", "/settings/ssh", "settings.ssh_change", (A,)),
    ("GET", "/settings/mgmt/", "mgmt.index", (A,)),  # the vendor hub's link: 管理者 only, never a vendor
    ("POST", "/settings/mgmt/decode", "mgmt.decode", (A,)),
    ("POST", "/settings/mgmt/approve", "mgmt.approve", (A,)),
    ("POST", "/settings/mgmt/cut", "mgmt.cut", (A,)),
    ("GET", "/settings/fleet/", "fleetweb.index", (A,)),  # the fleet API's switch and tokens: 管理者 only
    ("POST", "/settings/fleet/allow", "fleetweb.allow", (A,)),
    ("POST", "/settings/fleet/tokens", "fleetweb.create_token", (A,)),
    ("POST", "/settings/fleet/tokens/abc/revoke", "fleetweb.revoke_token", (A,)),
    ("GET", "/settings/backup", "settings.backup_page", (A,)),  # backups: 管理者 only, never a vendor
    ("GET", "/settings/backup/download/mamori-backup-20990101-000000.mbk", "settings.backup_download", (A,)),
    ("POST", "/settings/backup/now", "settings.backup_now", (A,)),
    ("POST", "/settings/backup/test/mamori-backup-20990101-000000.mbk", "settings.backup_test", (A,)),
    ("GET", "/settings/backup/restore/mamori-backup-20990101-000000.mbk", "settings.restore_start", (A,)),
    ("POST", "/settings/backup/restore/mamori-backup-20990101-000000.mbk", "settings.restore_start", (A,)),
    ("GET", "/settings/backup/restore/draft/x/ports", "settings.restore_ports", (A,)),
    ("POST", "/settings/backup/restore/draft/x/ports", "settings.restore_ports", (A,)),
    ("POST", "/settings/backup/restore/draft/x/run", "settings.restore_run", (A,)),
    ("POST", "/settings/backup/restore/draft/x/cancel", "settings.restore_cancel", (A,)),
    ("GET", "/audit/", "auditlog.index", (A,)),
    ("GET", "/reports/", "reports.index", (A,)),
    ("GET", "/reports/checklist.html", "reports.printable", (A,)),
    ("GET", "/reports/ledger.csv", "reports.ledger", (A,)),
    ("POST", "/reports/answer", "reports.answer", (A,)),
    ("GET", "/reports/monthly/2026-10.html", "reports.monthly", (A,)),
    ("GET", "/update/", "update.index", ALL),  # everyone sees the versions; installing is 管理者 (or granted)
    ("GET", "/update/progress", "update.progress", ALL),
    ("POST", "/update/install", "update.install", (A,)),
    ("POST", "/update/check", "update.check", (A,)),
    ("POST", "/update/cancel", "update.cancel", (A,)),
    ("POST", "/update/upload", "update.upload", (A,)),
    ("GET", "/accounts/", "accounts.index", (A,)),
    ("POST", "/accounts/", "accounts.create", (A,)),
    ("POST", "/accounts/staff/unlock", "accounts.change", (A,)),
]
# Reachable without an account, or guarded by their own state (wizard steps, proposals bound to a session).
UNGATED = {"static", "health", "auth.login", "auth.totp", "auth.enroll", "auth.logout", "setup.start",
           "setup.totp", "setup.clinic", "setup.ports", "setup.line", "setup.notify", "setup.summary", "settings.review",
           "update.static"}  # fmt: skip
# The fleet API: a bearer token per vendor account, never the session (tests/unit/test_fleet_api.py; below,
# every role's signed-in session gets 401).
TOKEN_GATED = {"fleetapi.get_config", "fleetapi.get_revision", "fleetapi.validate", "fleetapi.diff",
               "fleetapi.apply", "fleetapi.confirm"}  # fmt: skip


@pytest.fixture(scope="module")
def rbox(tmp_path_factory: pytest.TempPathFactory) -> Box:
    """One box for the whole table (Argon2id makes account creation deliberately slow)."""
    b = make_box(tmp_path_factory.mktemp("roles"))
    b.add("admin", "admin")
    b.add("staff", "viewer")
    b.add("vendor-fw", "vendor", grants=("firewall", "alerts"))
    b.add("vendor-none", "vendor")
    _seed_incident(b)
    return b


def _seed_incident(b: Box) -> None:
    now = time.time()
    with b.ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO ids_incidents(id, sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category) VALUES (1, 2024897, '198.51.100.66', '192.168.10.10', ?, ?, 3, 1, 'ET TEST', 'Misc Attack')",
            (now - 60, now),
        )


def test_every_route_is_in_the_table(box: Box) -> None:
    endpoints = {rule.endpoint for rule in box.app.url_map.iter_rules()}
    covered = {endpoint for _, _, endpoint, _ in TABLE}
    assert endpoints - covered - UNGATED - TOKEN_GATED == set()


@pytest.mark.parametrize("role", ALL)
def test_the_fleet_api_never_takes_a_session(rbox: Box, role: str) -> None:
    client = rbox.client()
    rbox.login(client, role)
    r = client.get("/api/v1/config", base_url="https://localhost")
    assert r.status_code == 401 and r.json["error"]["code"] == "fleet.unauthorized"


@pytest.mark.parametrize("role", ALL)
@pytest.mark.parametrize(
    ("method", "path", "endpoint", "allowed"), TABLE, ids=[f"{m} {p}" for m, p, _, _ in TABLE]
)
def test_role_route(
    rbox: Box, role: str, method: str, path: str, endpoint: str, allowed: tuple[str, ...]
) -> None:
    client = rbox.client()
    rbox.login(client, role)
    before = audit_actions(rbox, role).count("web.forbidden")
    if method == "GET":
        r = client.get(path)
    else:
        r = client.post(path, data={"csrf_token": session_token(client)})
    after = audit_actions(rbox, role).count("web.forbidden")
    if role in allowed:
        assert r.status_code != 403, f"{role} was refused {method} {path}"
        assert r.status_code < 500
        assert after == before
    else:
        assert r.status_code == 403, f"{role} got {r.status_code} for {method} {path}"
        assert after == before + 1


def test_anonymous_is_sent_to_sign_in(box: Box) -> None:
    client = box.client()
    for method, path, _, _ in TABLE:
        r = client.get(path) if method == "GET" else client.post(path, data={"csrf_token": "x"})
        assert r.status_code in (302, 400), path
        if r.status_code == 302:
            assert r.headers["Location"].endswith("/login")


def test_every_vendor_request_is_audited(rbox: Box) -> None:
    client = rbox.client()
    rbox.login(client, "vendor-fw")
    client.get("/firewall/")
    client.get("/alerts/?state=all")
    from appliance.audit import AuditLog

    paths = [e.detail["path"] for e in AuditLog(rbox.ctx.db).search(actor="vendor-fw", limit=50)
             if e.action == "web.vendor_request"]  # fmt: skip
    assert "/firewall/" in paths and "/alerts/?state=all" in paths


def test_navigation_shows_only_what_the_role_may_open(box: Box) -> None:
    client = box.client()
    box.login(client, "staff")
    page = client.get("/").get_data(as_text=True)
    assert "アラート" in page and "監査ログ" not in page and "ファイアウォール" not in page
