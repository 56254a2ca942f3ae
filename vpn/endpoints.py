"""Where the clinic's VPN users connect from: the query other areas ask before they act on an address.

The IDS's auto-block must never cut a doctor's or the vendor's tunnel because a forged packet named his
home address as its source. This module answers "which internet addresses are VPN peers", from the live
interface (`wg show dump`: the endpoint of every peer that has talked since the interface came up) and
from the tunnel log kept by vpn.monitor (the endpoints of the last day, so a device that is offline for a
moment still counts). Scope: an answer, never a change; callers do not read the VPN tables themselves.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess

from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.subsystem import Context
from vpn.monitor import peer_log
from vpn.wg import WgInterface

log = logging.getLogger(__name__)

RECENT_S = 24 * 3600.0
LOG_ROWS = 5000  # the tunnel log writes a bytes row per peer per minute: a day of a busy clinic fits


def _address(endpoint: str | None) -> str | None:
    """'198.51.100.20:51820' or '[2001:db8::1]:51820' → the address, normalised; None if not one."""
    host = (endpoint or "").rsplit(":", 1)[0].strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def peer_endpoints(ctx: Context, cfg: MamoriConfig, since_s: float = RECENT_S) -> set[str]:
    """Internet addresses VPN devices are connected from now or were within `since_s` seconds."""
    found: set[str | None] = set()
    if cfg.vpn.enabled:
        iface = WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)
        try:
            if iface.exists():
                # a probe peer (no AllowedIPs, vpn/reach.py) is the vendor's prober, not a VPN user
                found |= {_address(p.endpoint) for p in iface.dump().peers.values() if p.allowed_ips}
        except (
            MamoriError,
            OSError,
            subprocess.SubprocessError,
        ) as exc:  # the tunnel log below still answers
            log.warning("VPN peer endpoints: the live interface could not be read: %s", exc)
    found |= {_address(e.endpoint) for e in peer_log(ctx, since=wall() - since_s, limit=LOG_ROWS)}
    found.discard(None)
    return {a for a in found if a is not None}
