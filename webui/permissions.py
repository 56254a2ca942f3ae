"""Who may do what in the web UI: the navigation, and an account's permission set.

The permission names, the areas a clinic can grant a vendor and what each role holds live in the core
(`appliance.config.authority`), shared with ConfigService and the fleet path: one list, not two. Admin holds
all; viewer the fixed staff set; a vendor the dashboard plus the areas the clinic granted, until expiry.
Accounts, maintenance SSH, backups and the IDS rules are never grantable (authority.NEVER_GRANTABLE).
"""

from __future__ import annotations

from appliance.config.authority import (
    ADMIN_ONLY,
    ALL_PERMISSIONS,
    AREA_PERMISSIONS,
    EXPLICIT_GRANTS,
    NEVER_GRANTABLE,
    VIEWER_PERMISSIONS,
    permissions_for,
)
from webui.accounts import Account

__all__ = [
    "ADMIN_ONLY",
    "ALL_PERMISSIONS",
    "AREA_PERMISSIONS",
    "EXPLICIT_GRANTS",
    "NAVIGATION",
    "NEVER_GRANTABLE",
    "VIEWER_PERMISSIONS",
    "permissions_of",
]


def permissions_of(account: Account) -> frozenset[str]:
    return permissions_for(account.role, account.grants)


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
    ("ソフトウェア更新", "update.index", "dashboard.view"),
    ("アカウント", "accounts.index", "accounts.manage"),
)
