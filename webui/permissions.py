"""Who may do what. One table, read by the route decorator, the navigation and the tests.

A permission is "<area>.<verb>". Admin holds all; viewer holds the fixed staff set; a vendor holds the
dashboard plus the areas the clinic granted (each area's view and change permissions), until expiry.
Account management is never grantable: a vendor cannot create accounts or extend his own window.
"""

from __future__ import annotations

from webui.accounts import Account

AREA_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "alerts": ("alerts.view", "alerts.ack", "alerts.manage"),
    "firewall": ("firewall.view", "firewall.edit"),
    "vpn": ("vpn.view", "vpn.edit"),
    "devices": ("devices.view",),
    "settings": ("settings.view", "settings.edit"),
    "audit": ("audit.view",),
}
# Never grantable to a vendor: accounts, and replacing the IDS rules (new code the box runs on all traffic;
# the clinic's administrator decides, the vendor hands over the file), backups (every key of the box), and
# maintenance SSH (a root shell: the clinic opens it for the vendor, never the vendor for himself).
ADMIN_ONLY: frozenset[str] = frozenset({"accounts.manage", "ids.rules_update", "backup.manage", "ssh.manage"})
ALL_PERMISSIONS: frozenset[str] = frozenset(
    {"dashboard.view", *ADMIN_ONLY, *(p for ps in AREA_PERMISSIONS.values() for p in ps)}
)
VIEWER_PERMISSIONS: frozenset[str] = frozenset({"dashboard.view", "alerts.view", "alerts.ack"})


def permissions_of(account: Account) -> frozenset[str]:
    if account.role == "admin":
        return ALL_PERMISSIONS
    if account.role == "viewer":
        return VIEWER_PERMISSIONS
    granted = {"dashboard.view"}
    for area in account.grants:
        granted.update(AREA_PERMISSIONS.get(area, ()))
    return frozenset(granted)


# The navigation: (label, endpoint, permission needed to see it).
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("ダッシュボード", "dashboard.index", "dashboard.view"),
    ("アラート", "alerts.index", "alerts.view"),
    ("ファイアウォール", "firewall.index", "firewall.view"),
    ("VPN", "vpn.index", "vpn.view"),
    ("機器一覧", "devices.index", "devices.view"),
    ("設定", "settings.index", "settings.view"),
    ("監査ログ", "auditlog.index", "audit.view"),
    ("点検・報告", "reports.index", "audit.view"),
    ("アカウント", "accounts.index", "accounts.manage"),
)
