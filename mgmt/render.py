"""Config -> the plan of the management link's WireGuard interface: pure (no I/O), so it is unit-tested
without root and an unchanged config gives an equal plan.

One peer only: the hub, with AllowedIPs = the hub's own tunnel addresses (never a network behind the hub:
WireGuard then drops any packet from the hub whose source is not one of them), its endpoint, and
PersistentKeepalive so that the box's outbound UDP keeps the clinic router's NAT mapping open. No listen
port is chosen: the tunnel only dials out, and nothing on wan is opened for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.paths import Paths

KEY_NAME = "mgmt-link.key"


@dataclass(frozen=True)
class LinkPlan:
    enabled: bool
    ifname: str
    address: str = ""  # the box's tunnel address with /32 or /128
    hub_public_key: str = ""
    hub_endpoint: str = ""
    hub_allowed_ips: tuple[str, ...] = ()
    keepalive: int = 25

    def routes(self) -> tuple[str, ...]:
        """The hub's addresses are routed into the tunnel; nothing else is."""
        return self.hub_allowed_ips


def key_path(paths: Paths) -> Path:
    return paths.keys_dir / KEY_NAME


def render_link(cfg: MamoriConfig, ifname: str | None = None) -> LinkPlan:
    m = cfg.mgmt
    name = ifname or m.interface
    if not m.enabled:
        return LinkPlan(enabled=False, ifname=name)
    return LinkPlan(
        enabled=True,
        ifname=name,
        address=m.host_prefix(),
        hub_public_key=m.hub_public_key,
        hub_endpoint=m.hub_endpoint,
        hub_allowed_ips=m.hub_allowed_ips(),
        keepalive=m.keepalive,
    )
