"""The ordered list of subsystems a config is applied to: network first, then the firewall, then daemons."""

from __future__ import annotations

import importlib

from appliance.subsystem import Context, Subsystem

# Order matters: interfaces and addresses exist before the firewall names them; the firewall is live
# before any service (dnsmasq, Suricata, WireGuard) starts answering.
SUBSYSTEM_MODULES: tuple[str, ...] = (
    "appliance.network",
    "firewall.subsystem",
    "timesvc.subsystem",
    "sshsvc.subsystem",
    "ids.subsystem",
    "vpn.subsystem",
    "mgmt.subsystem",
    "siem.subsystem",
)


def build_subsystems(ctx: Context, modules: tuple[str, ...] = SUBSYSTEM_MODULES) -> list[Subsystem]:
    result: list[Subsystem] = []
    for name in modules:
        result.extend(importlib.import_module(name).subsystems(ctx))
    return result
