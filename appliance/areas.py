"""The composition: which areas make a Mamori box, in dependency order. The one module of the ground floor
(appliance/) that names areas; every registry iterates `AREAS` (appliance.area says what an area declares).

Order matters where it is used in order: subsystems are applied in it (and restored in reverse), so an
area comes after what it stands on — interfaces and addresses (the ground floor's network) before the
firewall names them, the firewall live before any service answers. Config sections, CLI commands,
migrations, workers and pages follow the same order.

Adding an area: its folder with an `area.py` (`AREA = Area(...)`), and one line below.
"""

from __future__ import annotations

import importlib

from appliance.area import Area

AREA_MODULES: tuple[str, ...] = (
    "firewall.area",  # zones, the policy, DHCP/DNS: live before any service answers
    "timesvc.area",  # chronyd serves the zones the policy lets ask
    "sshsvc.area",  # maintenance sshd, on lan/mgmt only
    "ids.area",  # Suricata; blocks through the firewall's sets
    "vpn.area",  # WireGuard for doctors; its rules are the firewall's
    "mgmt.area",  # the vendor's link; a VPN line may relay through it
    "siem.area",  # logs may leave through the management link
    "metrics.area",  # listens on lan, mgmt or vpn addresses
    "appliance.backup.area",  # backs up the state of every area above
    "reports.area",  # reads the areas above
    "webui.area",  # the pages of the areas above
    "fleetapi.area",  # the vendor's API in the web UI process
    "update.area",  # software updates (pages in the web UI)
)

# The ground floor's own entries: its migrations (config revisions, audit log, kv; notifications), the
# network under everything, the retention coordinator (also the pruner of revisions and the audit log).
GROUND: tuple[Area, ...] = (
    Area(
        name="appliance",
        schema="appliance.schema",
        subsystems="appliance.network",
        workers=("appliance.retention",),
        retention="appliance.retention",
        retention_share=0.04,
    ),
    Area(name="notify", schema="appliance.notify.schema"),
)

AREAS: tuple[Area, ...] = GROUND + tuple(importlib.import_module(m).AREA for m in AREA_MODULES)


def hooks_of(area: Area, kind: str) -> list[str]:
    """One area's hooks of one kind ("cli", "workers", "blueprints", ...): none, one or several."""
    value = getattr(area, kind)
    if isinstance(value, tuple):
        return list(value)
    return [] if value is None else [value]


def hooks(kind: str) -> list[str]:
    """Every area's hooks of one kind, in the areas' order."""
    return [ref for area in AREAS for ref in hooks_of(area, kind)]
