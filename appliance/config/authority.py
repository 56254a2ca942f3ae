"""Who may change which part of the config: the permission names, and the check that compares a proposed
config with the live one and names every changed path the actor has no right to change.

Pure: no Flask, no database, no clock. The web UI (webui.permissions, the review page), ConfigService
(`apply(..., authority=...)`) and the coming fleet path (a vendor pushing config over a management link)
all read this one module, so a permission cannot mean one thing on one path and another on the next.

Permissions are "<area>.<verb>". Roles:
  admin  -> every permission (ALL_PERMISSIONS).
  viewer -> VIEWER_PERMISSIONS (dashboard, alerts, acknowledge); changes no config.
  vendor -> the dashboard plus what the clinic granted, by area (AREA_PERMISSIONS); the admin-only
            permissions of EXPLICIT_GRANTS only when the clinic grants that area by name; NEVER_GRANTABLE
            never (accounts, ssh, backups, replacing the IDS rules).

Who may change what (the first row whose path is a prefix of the changed path decides; `*` is any name):

  path                                   permission            why it is not plain settings.edit
  ssh.*                                  ssh.manage            a root login: never a vendor's own choice
  mgmt.*                                 mgmt.manage           the vendor hub's link: the clinic opens it
  update.*                               update.manage         where the box takes new code from: never a
                                                               vendor's own choice (update/)
  fleet.*                                fleet.manage          whether the vendor's fleet API may change the
                                                               box at all: the clinic decides (fleetapi/)
  backup.*                               backup.manage         every key of the box leaves with a backup
  siem.*                                 siem.manage           the audit log and the alerts leave the box
                                                               for the host named here; off, the clinic's
                                                               SIEM goes quiet (siem/, docs/siem.md)
  notifications.*                        notifications.manage  the box sends its SMTP password / LINE token
                                                               to the host named here; silencing the clinic
  web.*  (and the TLS certificate page)  web.manage            who can reach, and read, the admin's sign-in
  vpn.users.*.display_name               vpn.edit              a label
  vpn.users.* (role, hours, access,      vpn.users             a vendor turning himself into staff drops his
    session_hours, enabled, add/remove)                        maintenance window (vpn/policy.py)
  vpn.*  (enabled, port, pool, endpoint) vpn.edit
  ids.enabled, ids.interfaces,           ids.response          switching detection or its answer off, or
    ids.auto_block.*, ids.retention_days,                      shortening the evidence the clinic keeps
    ids.max_db_mb, storage.* (ages, budget)
  metrics.*                              web.manage            who may read the box's state over the network
  interfaces.*, dhcp.dns_upstreams       network.manage        which port is the internet and which the
                                                               clinic (swapping them puts the sign-in page
                                                               on the internet); whose resolver answers the
                                                               clinic's PCs (a name pointed elsewhere)
  ntp.*                                  time.manage           the clock the vendor's own maintenance window
                                                               and account expiry are measured by
  firewall.allowlist                     ids.response          an allowlisted address is never auto-blocked
  firewall.*                             firewall.edit
  everything else (clinic, hosts,        settings.edit         what the 設定 grant is for; IDS tuning
    groups, services, dhcp ranges,                             (profile, suppressions, thresholds) included
    ids tuning, schema_version)

One more rule spans sections: a host, group or service that a VPN user's `access` names (directly, or a
host inside a named group) also needs vpn.users, because changing it changes where that user may go.

Non-goals: judging whether a change is *wise* (validation does that), or the direction of a change (turning
SSH off needs ssh.manage like turning it on: one rule per path is easy to read and to test). Changes that
never reach the config (devices, maintenance windows, blocks) are guarded by their own routes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError

# -- the permission names --------------------------------------------------------------------------------

DASHBOARD_VIEW = "dashboard.view"
SETTINGS_EDIT = "settings.edit"
FIREWALL_EDIT = "firewall.edit"
VPN_EDIT = "vpn.edit"
VPN_USERS = "vpn.users"
IDS_RESPONSE = "ids.response"
NOTIFICATIONS_MANAGE = "notifications.manage"
WEB_MANAGE = "web.manage"
SSH_MANAGE = "ssh.manage"
MGMT_MANAGE = "mgmt.manage"
UPDATE_MANAGE = "update.manage"
UPDATE_INSTALL = "update.install"
FLEET_MANAGE = "fleet.manage"
NETWORK_MANAGE = "network.manage"
TIME_MANAGE = "time.manage"
SIEM_MANAGE = "siem.manage"
BACKUP_MANAGE = "backup.manage"
ACCOUNTS_MANAGE = "accounts.manage"
IDS_RULES_UPDATE = "ids.rules_update"

# Areas a clinic grants a vendor; each area's view and change permissions come with it.
AREA_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "alerts": ("alerts.view", "alerts.ack", "alerts.manage"),
    "firewall": ("firewall.view", FIREWALL_EDIT),
    "vpn": ("vpn.view", VPN_EDIT),
    "devices": ("devices.view",),
    "settings": ("settings.view", SETTINGS_EDIT),
    "audit": ("audit.view",),
    "update": (UPDATE_INSTALL,),  # install a verified software update (update/)
}
# Admin-only unless the clinic grants the area by name: none of them comes with another area's grant.
EXPLICIT_GRANTS: dict[str, tuple[str, ...]] = {
    "notifications": (NOTIFICATIONS_MANAGE,),
    "web": (WEB_MANAGE,),
    "vpn_users": (VPN_USERS,),
    "ids_response": (IDS_RESPONSE,),
    "network": (NETWORK_MANAGE,),
    "time": (TIME_MANAGE,),
}
# Never grantable to a vendor: accounts (he would extend his own window), replacing the IDS rules (new code
# the box runs on all traffic), backups (every key of the box), and maintenance SSH (a root shell: the
# clinic opens it for the vendor, never the vendor for himself), and the vendor hub's management link
# (the clinic approves and cuts it; a vendor must never enrol or keep his own link), and the switch that lets
# the vendor's fleet API change the box (a vendor must never allow himself bulk changes), and where the
# box sends its audit log (siem: a vendor must never route the record of his own actions to himself).
NEVER_GRANTABLE: frozenset[str] = frozenset(
    {ACCOUNTS_MANAGE, IDS_RULES_UPDATE, BACKUP_MANAGE, SSH_MANAGE, MGMT_MANAGE, UPDATE_MANAGE, FLEET_MANAGE,
     SIEM_MANAGE}
)  # fmt: skip
ADMIN_ONLY: frozenset[str] = NEVER_GRANTABLE | {p for ps in EXPLICIT_GRANTS.values() for p in ps}
GRANTABLE_AREAS: tuple[str, ...] = (*AREA_PERMISSIONS, *EXPLICIT_GRANTS)
ALL_PERMISSIONS: frozenset[str] = frozenset(
    {DASHBOARD_VIEW, *ADMIN_ONLY, *(p for ps in AREA_PERMISSIONS.values() for p in ps)}
)
VIEWER_PERMISSIONS: frozenset[str] = frozenset({DASHBOARD_VIEW, "alerts.view", "alerts.ack"})


def permissions_for(role: str, grants: Iterable[str] = ()) -> frozenset[str]:
    """The permission set of a role with its grants (grants only count for a vendor)."""
    if role == "admin":
        return ALL_PERMISSIONS
    if role == "viewer":
        return VIEWER_PERMISSIONS
    if role != "vendor":
        return frozenset()
    granted = {DASHBOARD_VIEW}
    for area in grants:
        granted.update(AREA_PERMISSIONS.get(area, ()))
        granted.update(EXPLICIT_GRANTS.get(area, ()))
    return frozenset(granted - NEVER_GRANTABLE)


# -- which path needs which permission --------------------------------------------------------------------

RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ssh",), SSH_MANAGE),
    (("mgmt",), MGMT_MANAGE),
    (("update",), UPDATE_MANAGE),
    (("fleet",), FLEET_MANAGE),
    (("backup",), BACKUP_MANAGE),
    (("siem",), SIEM_MANAGE),
    (("notifications",), NOTIFICATIONS_MANAGE),
    (("web",), WEB_MANAGE),
    (("vpn", "users", "*", "display_name"), VPN_EDIT),
    (("vpn", "users"), VPN_USERS),
    (("vpn",), VPN_EDIT),
    (("ids", "enabled"), IDS_RESPONSE),
    (("ids", "interfaces"), IDS_RESPONSE),
    (("ids", "auto_block"), IDS_RESPONSE),
    (("ids", "retention_days"), IDS_RESPONSE),
    (("ids", "max_db_mb"), IDS_RESPONSE),
    (("storage",), IDS_RESPONSE),  # how long the box keeps its evidence: the audit log, the vendor's connects
    (("metrics",), WEB_MANAGE),  # who may read the box's state over the network, and with which token
    (("interfaces",), NETWORK_MANAGE),  # zones decide what the internet reaches: not plain settings
    (("dhcp", "dns_upstreams"), NETWORK_MANAGE),  # whose resolver answers every PC of the clinic
    (("ntp",), TIME_MANAGE),  # a vendor's window and account expire by this clock
    (("firewall", "allowlist"), IDS_RESPONSE),
    (("firewall",), FIREWALL_EDIT),
    ((), SETTINGS_EDIT),
)

# What a refusal names, per permission: (Japanese, English).
LABELS: dict[str, tuple[str, str]] = {
    SSH_MANAGE: ("保守用の遠隔ログイン（ssh）", "maintenance SSH (ssh)"),
    MGMT_MANAGE: ("保守業者の管理接続（mgmt）", "the vendor hub's management link (mgmt)"),
    UPDATE_MANAGE: (
        "ソフトウェア更新の取得先と自動更新（update）",
        "where and when software updates come from (update)",
    ),
    FLEET_MANAGE: (
        "保守業者による設定の一括変更の許可（fleet）",
        "allowing the vendor's fleet changes (fleet)",
    ),
    BACKUP_MANAGE: ("バックアップ（backup）", "backups (backup)"),
    SIEM_MANAGE: ("SIEM へのログ送信（siem）", "sending logs to a SIEM (siem)"),
    NOTIFICATIONS_MANAGE: ("お知らせの送り先（notifications）", "notification channels (notifications)"),
    WEB_MANAGE: ("管理画面の受け付け（web）", "the management web UI (web)"),
    VPN_USERS: (
        "VPN 利用者の役割・時間帯・アクセス先（vpn.users）",
        "VPN users' role, hours and access (vpn.users)",
    ),
    VPN_EDIT: ("VPN（vpn）", "the VPN (vpn)"),
    IDS_RESPONSE: (
        "侵入検知の停止・自動遮断・記録の保存（ids）",
        "switching the IDS, auto-block or its records (ids)",
    ),
    FIREWALL_EDIT: ("ファイアウォールのルール（firewall）", "firewall rules (firewall)"),
    NETWORK_MANAGE: (
        "ネットワークの差し込み口と区域・名前解決の問い合わせ先（interfaces, dhcp.dns_upstreams）",
        "network ports, their zones and the DNS upstreams (interfaces, dhcp.dns_upstreams)",
    ),
    TIME_MANAGE: ("時刻合わせの相手（ntp）", "where the box takes its time from (ntp)"),
    SETTINGS_EDIT: ("設定", "the settings"),
}


Path = tuple[str, ...]


def required_permission(parts: Path) -> str:
    """The permission the table above asks for a changed path, as parts: ("vpn", "users", "yamada", "role").
    Parts, not a dotted string: a name may itself hold a dot and must never look like a field."""
    for prefix, permission in RULES:
        if len(parts) >= len(prefix) and all(p in ("*", q) for p, q in zip(prefix, parts, strict=False)):
            return permission
    raise AssertionError("the last rule matches every path")  # pragma: no cover


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of named objects as {name: object} (an empty list is one), else None (or names repeat)."""
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return None
    names = [i["name"] for i in items]
    return {i["name"]: i for i in items} if len(set(names)) == len(names) else None


def _diff(old: Any, new: Any, path: Path, out: list[Path]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _diff(old.get(key), new.get(key), (*path, str(key)), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        kold, knew = _keyed(old), _keyed(new)
        if kold is not None and knew is not None:
            for name in sorted(set(kold) | set(knew)):
                if name in kold and name in knew:
                    _diff(kold[name], knew[name], (*path, name), out)
                elif kold.get(name) != knew.get(name):
                    out.append((*path, name))
            return
    out.append(path)


def changed_paths(old: MamoriConfig | None, new: MamoriConfig) -> list[Path]:
    """Every dotted path whose value differs; lists of named objects (users, hosts...) compared by name.
    Against no config at all, every top-level section counts as changed."""
    new_data = new.model_dump(mode="json")
    if old is None:
        return [(key,) for key in sorted(new_data)]
    out: list[Path] = []
    _diff(old.model_dump(mode="json"), new_data, (), out)
    return out


def _vpn_reached(cfg: MamoriConfig) -> set[str]:
    """Names of hosts, groups and services that a VPN user's access depends on."""
    groups = {g.name: g.members for g in cfg.groups}
    names: set[str] = set()
    for user in cfg.vpn.users:
        for access in user.access:
            names.add(access.dst)
            names.update(groups.get(access.dst, ()))
            if access.service:
                names.add(access.service)
    return names


@dataclass(frozen=True)
class Missing:
    """One changed path and a permission it needs. `path` is dotted, for people and the audit log."""

    path: str
    permission: str


def requirements(old: MamoriConfig | None, new: MamoriConfig) -> list[Missing]:
    """(path, permission) for every changed path: what an actor must hold for the change to land."""
    reached = (_vpn_reached(old) if old else set()) | _vpn_reached(new)
    needs: list[Missing] = []
    for parts in changed_paths(old, new):
        dotted = ".".join(parts)
        needs.append(Missing(dotted, required_permission(parts)))
        if parts[0] in ("hosts", "groups", "services") and (len(parts) == 1 or parts[1] in reached):
            needs.append(Missing(dotted, VPN_USERS))
    return needs


def missing(old: MamoriConfig | None, new: MamoriConfig, allowed: Collection[str]) -> list[Missing]:
    return [m for m in requirements(old, new) if m.permission not in allowed]


class ConfigRefused(MamoriError):
    """The actor may not change some of the changed paths. Nothing was applied."""

    code = "config.refused"

    def __init__(self, lacking: list[Missing]) -> None:
        self.missing = tuple(lacking)
        perms = list(dict.fromkeys(m.permission for m in lacking))
        ja = "、".join(LABELS.get(p, (p, p))[0] for p in perms)
        en = ", ".join(LABELS.get(p, (p, p))[1] for p in perms)
        paths = list(dict.fromkeys(m.path for m in lacking))
        shown = ", ".join(paths[:6]) + (" ..." if len(paths) > 6 else "")
        super().__init__(
            f"{ja}を変える権限がありません。管理者に依頼してください。（変更しようとした箇所: {shown}）",
            f"You may not change {en} ({shown}). Ask the clinic's administrator.",
        )

    def detail(self) -> dict[str, Any]:
        """For the audit log: the paths refused and the permissions missing."""
        return {
            "paths": list(dict.fromkeys(m.path for m in self.missing)),
            "missing": sorted({m.permission for m in self.missing}),
        }


def check(old: MamoriConfig | None, new: MamoriConfig, allowed: Collection[str]) -> None:
    """Raise ConfigRefused unless `allowed` covers every change from `old` to `new`."""
    lacking = missing(old, new, allowed)
    if lacking:
        raise ConfigRefused(lacking)
