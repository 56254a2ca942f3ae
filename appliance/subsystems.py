"""The ordered list of subsystems a config is applied to: network first, then the firewall, then daemons."""

from __future__ import annotations

from appliance.area import load
from appliance.areas import hooks
from appliance.subsystem import Context, Subsystem

# In the areas' order (appliance.areas): interfaces and addresses exist before the firewall names them; the
# firewall is live before any service (dnsmasq, Suricata, WireGuard) starts answering.
SUBSYSTEM_MODULES: tuple[str, ...] = tuple(hooks("subsystems"))


def build_subsystems(ctx: Context, modules: tuple[str, ...] = SUBSYSTEM_MODULES) -> list[Subsystem]:
    result: list[Subsystem] = []
    for name in modules:
        result.extend(load(name).subsystems(ctx))
    return result
