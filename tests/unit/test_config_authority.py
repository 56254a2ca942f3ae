"""Who may change what in the config (appliance.config.authority), and ConfigService enforcing it.

The table below (role × section) is shared with tests/unit/test_webui_config_authority.py, which runs it
through the web UI's raw editor, the forms and rollback. Here: the pure path -> permission table, the roles,
and `ConfigService.apply(..., authority=...)` / `rollback(..., authority=...)` directly. A refusal changes
nothing (the live revision and the config file stay) and is audited as `config.refused`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.audit import AuditLog
from appliance.config import authority as auth
from appliance.config.load import parse_config
from appliance.paths import Paths
from appliance.service import ConfigService
from appliance.storage import Database
from appliance.subsystem import Context
from tests.unit.test_ssh_render import KEY_ED25519

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"


def baseline_data() -> dict[str, Any]:
    """The example clinic with every notification channel set and hours on the vendor's VPN user."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["notifications"]["email"] = {"host": "smtp.clinic.example", "sender": "box@clinic.example",
                                      "recipients": ["incho@clinic.example"]}  # fmt: skip
    data["notifications"]["webhook"] = {"url": "https://hooks.clinic.example/mamori"}
    data["notifications"]["line"] = {"to": "U0123456789abcdef"}
    _vuser(data, "vendor-a")["hours"] = {"start": "09:00", "end": "18:00"}
    return data


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _vuser(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(u for u in data["vpn"]["users"] if u["name"] == name)


def _set(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return mutate


def _ssh_on(data: dict[str, Any]) -> None:
    data["ssh"] = {"enabled": True, "authorized_keys": [KEY_ED25519]}


def _vendor_staff(data: dict[str, Any]) -> None:
    _vuser(data, "vendor-a")["role"] = "staff"


def _vendor_no_hours(data: dict[str, Any]) -> None:
    _vuser(data, "vendor-a").pop("hours")


def _vendor_more_access(data: dict[str, Any]) -> None:
    _vuser(data, "vendor-a")["access"].append({"dst": "PACS"})


def _new_user(data: dict[str, Any]) -> None:
    data["vpn"]["users"].append({"name": "helper", "role": "staff", "access": [{"dst": "lan"}]})


def _firewall_rule(data: dict[str, Any]) -> None:
    data["firewall"]["rules"].append({"src": "受付PC", "dst": "PACS", "service": "HTTPS"})


# section -> (how the config text changes, the permission it needs)
SECTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "ssh": (_ssh_on, auth.SSH_MANAGE),
    "backup": (_set("backup", "keep", value=30), auth.BACKUP_MANAGE),
    "smtp_host": (
        _set("notifications", "email", "host", value="smtp.evil.example"),
        auth.NOTIFICATIONS_MANAGE,
    ),
    # Who gets the LINE messages (api_base itself is fixed to api.line.me by validation).
    "line_to": (_set("notifications", "line", "to", value="U-vendor-own-id"), auth.NOTIFICATIONS_MANAGE),
    "webhook_url": (
        _set("notifications", "webhook", "url", value="https://evil.example/h"),
        auth.NOTIFICATIONS_MANAGE,
    ),
    "web": (_set("web", "zones", value=["lan", "mgmt", "devices"]), auth.WEB_MANAGE),
    "vpn_role": (_vendor_staff, auth.VPN_USERS),
    "vpn_hours": (_vendor_no_hours, auth.VPN_USERS),
    "vpn_access": (_vendor_more_access, auth.VPN_USERS),
    "vpn_new_user": (_new_user, auth.VPN_USERS),
    "vpn_endpoint": (_set("vpn", "endpoint", value="vpn.clinic.example"), auth.VPN_EDIT),
    "ids_enabled": (_set("ids", "enabled", value=False), auth.IDS_RESPONSE),
    "ids_auto_block": (_set("ids", "auto_block", "enabled", value=False), auth.IDS_RESPONSE),
    "firewall_rule": (_firewall_rule, auth.FIREWALL_EDIT),
    "clinic_name": (_set("clinic", "name", value="さくら内科・小児科クリニック"), auth.SETTINGS_EDIT),
}

# role -> (account role, grants)
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ()),
    "vendor-settings": ("vendor", ("settings",)),
    "vendor-vpn": ("vendor", ("vpn",)),
    "vendor-fw": ("vendor", ("firewall",)),
    "viewer": ("viewer", ()),
}
# What each role may change, by section; everything else is refused.
ALLOWED: dict[str, set[str]] = {
    "admin": set(SECTIONS),
    "vendor-settings": {"clinic_name"},
    "vendor-vpn": {"vpn_endpoint"},
    "vendor-fw": {"firewall_rule"},
    "viewer": set(),
}


def changed_text(section: str) -> str:
    data = copy.deepcopy(baseline_data())
    SECTIONS[section][0](data)
    return dump(data)


def rights(role: str) -> frozenset[str]:
    return auth.permissions_for(*ROLES[role])


# -- pure: the tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "permission"),
    [
        (("ssh", "enabled"), "ssh.manage"),
        (("ssh", "authorized_keys"), "ssh.manage"),
        (("backup", "dir"), "backup.manage"),
        # The audit log and alerts leave for this host: never a vendor's choice (docs/siem.md).
        (("siem", "collector"), "siem.manage"),
        (("siem", "enabled"), "siem.manage"),
        (("notifications", "line", "api_base"), "notifications.manage"),
        (("notifications", "daily_digest"), "notifications.manage"),
        (("web", "port"), "web.manage"),
        (("vpn", "users", "vendor-a", "role"), "vpn.users"),
        (("vpn", "users", "vendor-a", "hours"), "vpn.users"),
        (("vpn", "users", "vendor-a", "session_hours"), "vpn.users"),
        (("vpn", "users", "vendor-a"), "vpn.users"),  # added or removed
        (("vpn", "users", "vendor-a", "display_name"), "vpn.edit"),
        (("vpn", "users", "a.display_name", "role"), "vpn.users"),  # a dot in a name is not a field
        (("vpn", "endpoint"), "vpn.edit"),
        (("vpn", "enabled"), "vpn.edit"),
        (("ids", "enabled"), "ids.response"),
        (("ids", "interfaces"), "ids.response"),
        (("ids", "auto_block", "min_severity"), "ids.response"),
        (("ids", "retention_days"), "ids.response"),
        (("ids", "profile"), "settings.edit"),
        (("storage", "audit_days"), "ids.response"),  # a vendor must not shorten the evidence kept of him
        (("storage", "max_db_mb"), "ids.response"),
        (("metrics", "listen"), "web.manage"),
        (("ids", "suppress"), "settings.edit"),
        (("firewall", "allowlist"), "ids.response"),
        (("firewall", "rules"), "firewall.edit"),
        (("firewall", "port_forwards"), "firewall.edit"),
        (("clinic", "name"), "settings.edit"),
        (("interfaces", "lan0", "address"), "network.manage"),
        (("interfaces", "wan0", "zone"), "network.manage"),
        (("dhcp", "dns_upstreams"), "network.manage"),
        (("dhcp", "ranges"), "settings.edit"),
        (("ntp", "servers"), "time.manage"),
    ],
)
def test_path_needs_permission(path: tuple[str, ...], permission: str) -> None:
    assert auth.required_permission(path) == permission


def test_admin_holds_every_permission_the_table_can_ask_for() -> None:
    asked = {permission for _, permission in auth.RULES} | {auth.VPN_USERS}
    assert asked <= auth.ALL_PERMISSIONS == auth.permissions_for("admin")
    assert set(auth.LABELS) == asked


def test_roles_and_grants() -> None:
    assert auth.permissions_for("viewer") == auth.VIEWER_PERMISSIONS
    assert not {"settings.edit", "firewall.edit", "vpn.edit"} & auth.permissions_for("viewer")
    vendor = auth.permissions_for("vendor", ("settings", "vpn", "firewall", "alerts"))
    assert {"settings.edit", "vpn.edit", "firewall.edit"} <= vendor
    assert not auth.ADMIN_ONLY & vendor  # no area grant brings an admin-only permission along
    assert auth.permissions_for("vendor", ("notifications",)) == {"dashboard.view", "notifications.manage"}
    # Never grantable, whatever the stored grants say.
    for area in ("ssh", "backup", "accounts", "ssh.manage", "backup.manage"):
        assert not auth.NEVER_GRANTABLE & auth.permissions_for("vendor", (area,))
    assert not auth.NEVER_GRANTABLE & auth.permissions_for("vendor", auth.GRANTABLE_AREAS)
    assert auth.permissions_for("nobody", ("settings",)) == frozenset()
    assert "siem.manage" not in auth.permissions_for("vendor", (*auth.GRANTABLE_AREAS, "siem"))


def test_changed_paths_compare_named_lists_by_name() -> None:
    old = parse_config(dump(baseline_data())).model
    data = baseline_data()
    _vendor_staff(data)
    _vuser(data, "yamada")["display_name"] = "山田 先生"
    data["vpn"]["users"].append({"name": "helper", "role": "staff"})
    data["hosts"] = [h for h in data["hosts"] if h["name"] != "受付PC"]
    data["firewall"]["rules"] = data["firewall"]["rules"][:1]
    new = parse_config(dump(data)).model
    assert auth.changed_paths(old, new) == [
        ("firewall", "rules"),
        ("hosts", "受付PC"),
        ("vpn", "users", "helper"),
        ("vpn", "users", "vendor-a", "role"),
        ("vpn", "users", "yamada", "display_name"),
    ]
    assert auth.changed_paths(old, old) == []
    assert ("ssh",) in auth.changed_paths(None, old)  # against nothing, every section is new


def test_a_host_a_vpn_user_reaches_also_needs_vpn_users() -> None:
    """Moving 電子カルテ (in vendor-a's access) moves where the vendor may go; 受付PC is not reached."""
    old = parse_config(dump(baseline_data())).model
    for host, needs_vpn_users in (("電子カルテ", True), ("受付PC", False), ("PACS", False)):
        data = baseline_data()
        next(h for h in data["hosts"] if h["name"] == host)["ip"] = "192.168.10.99"
        needs = {m.permission for m in auth.requirements(old, parse_config(dump(data)).model)}
        assert needs == ({"settings.edit", "vpn.users"} if needs_vpn_users else {"settings.edit"}), host
    data = baseline_data()  # a host inside a group that a VPN user's access names
    _vuser(data, "yamada")["access"] = [{"dst": "診療系サーバー"}]
    reaching = parse_config(dump(data)).model
    next(h for h in data["hosts"] if h["name"] == "PACS")["ip"] = "192.168.10.98"
    needs = {m.permission for m in auth.requirements(reaching, parse_config(dump(data)).model)}
    assert needs == {"settings.edit", "vpn.users"}


def test_refusal_names_the_section_in_japanese_and_english() -> None:
    old = parse_config(dump(baseline_data())).model
    new = parse_config(changed_text("ssh")).model
    with pytest.raises(auth.ConfigRefused) as caught:
        auth.check(old, new, rights("vendor-settings"))
    exc = caught.value
    assert exc.code == "config.refused"
    assert exc.text("ja").startswith(
        "保守用の遠隔ログイン（ssh）を変える権限がありません。管理者に依頼してください。"
    )
    assert "ssh.enabled" in exc.text("ja") and "maintenance SSH" in exc.text("en")
    assert exc.detail() == {"paths": ["ssh.authorized_keys", "ssh.enabled"], "missing": ["ssh.manage"]}
    auth.check(old, new, rights("admin"))  # no exception


# -- ConfigService: apply and rollback with the actor's rights --------------------------------------------


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> ConfigService:
    tmp = tmp_path_factory.mktemp("authority")
    paths = Paths(config=tmp / "config.yaml", state_dir=tmp / "state")
    return ConfigService(Context(paths=paths, db=Database(paths.db)), subsystems=[])


def _reset(svc: ConfigService) -> int:
    """The baseline is live (applied as root, as the CLI would); returns its revision id."""
    return svc.apply(dump(baseline_data()), "root", "cli", "baseline").id


def _last_audit(svc: ConfigService) -> Any:
    return AuditLog(svc.ctx.db).search(limit=1)[0]


def assert_refused(svc: ConfigService, live_id: int, role: str, permission: str) -> None:
    live = svc.current()
    assert live is not None and live.id == live_id
    assert svc.ctx.paths.config.read_text(encoding="utf-8") == live.config_text
    entry = _last_audit(svc)
    assert (entry.action, entry.actor) == ("config.refused", role)
    assert permission in entry.detail["missing"]


CASES = [(role, section) for role in ROLES for section in SECTIONS]


@pytest.mark.parametrize(("role", "section"), CASES, ids=[f"{r}-{s}" for r, s in CASES])
def test_apply_with_authority(svc: ConfigService, role: str, section: str) -> None:
    live_id = _reset(svc)
    text = changed_text(section)
    if section in ALLOWED[role]:
        rev = svc.apply(text, role, "web", section, authority=rights(role))
        assert svc.current().id == rev.id > live_id and svc.current().config_text == text
        return
    with pytest.raises(auth.ConfigRefused):
        svc.apply(text, role, "web", section, authority=rights(role))
    assert_refused(svc, live_id, role, SECTIONS[section][1])


@pytest.mark.parametrize(("role", "section"), CASES, ids=[f"{r}-{s}" for r, s in CASES])
def test_rollback_with_authority(svc: ConfigService, role: str, section: str) -> None:
    """An old revision where the section was different: rolling back to it changes that section."""
    old = svc.apply(changed_text(section), "root", "cli", "earlier").id
    live_id = _reset(svc)
    if section in ALLOWED[role]:
        rev = svc.rollback(old, role, "web", authority=rights(role))
        assert svc.current().id == rev.id and rev.config_text == changed_text(section)
        return
    with pytest.raises(auth.ConfigRefused):
        svc.rollback(old, role, "web", authority=rights(role))
    assert_refused(svc, live_id, role, SECTIONS[section][1])


def test_without_authority_the_caller_is_root(svc: ConfigService) -> None:
    """The CLI and the daemon pass no authority: unchanged behaviour, SSH can be switched on."""
    _reset(svc)
    rev = svc.apply(changed_text("ssh"), "root", "cli", "ssh")
    assert svc.current().id == rev.id


def test_no_live_revision_compares_with_the_config_file(tmp_path: Path) -> None:
    """Before the first apply the daemon boots from the config file: a vendor's change is measured against
    it; with no file either, every section is new and only the administrator may write the first config."""
    paths = Paths(config=tmp_path / "config.yaml", state_dir=tmp_path / "state")
    svc = ConfigService(Context(paths=paths, db=Database(paths.db)), subsystems=[])
    with pytest.raises(auth.ConfigRefused):
        svc.apply(changed_text("firewall_rule"), "vendor-fw", "web", authority=rights("vendor-fw"))
    assert svc.current() is None and not paths.config.exists()
    paths.config.write_text(dump(baseline_data()), encoding="utf-8")
    with pytest.raises(auth.ConfigRefused):
        svc.apply(changed_text("ssh"), "vendor-fw", "web", authority=rights("vendor-fw"))
    rev = svc.apply(changed_text("firewall_rule"), "vendor-fw", "web", authority=rights("vendor-fw"))
    assert svc.current().id == rev.id


def test_a_vendor_with_the_settings_grant_cannot_move_zones_or_the_clock() -> None:
    """Swapping the wan and lan zones would put the sign-in page on the internet; pointing the box at the
    vendor's own time server would stretch his maintenance window and account. Both need the clinic's grant
    by name ("network", "time"), which the settings grant does not bring."""
    vendor = auth.permissions_for("vendor", ["settings", "firewall", "vpn"])
    assert not {"network.manage", "time.manage"} & vendor
    assert {"network.manage", "time.manage"} <= auth.permissions_for("vendor", ["network", "time"])
    assert {"network.manage", "time.manage"} <= auth.permissions_for("admin")
    for area in ("network", "time"):
        assert area in auth.GRANTABLE_AREAS and area not in auth.AREA_PERMISSIONS  # by name only
