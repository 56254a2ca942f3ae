"""The secure default policy as data: which zone may open connections to which, and what the box answers.

This table is the product's baseline and is deliberately not configurable (see docs/firewall.md, "既定の
方針"); the clinic's own `firewall.rules` only ever open more. Replies to allowed connections
(ct established/related) always pass. Kept as data so the renderer, the docs and the tests share it.
"""

from __future__ import annotations

from typing import Literal

Verdict = Literal["accept", "outbound", "drop"]

# (src zone, dst zone) -> default verdict for NEW connections forwarded through the box.
# "outbound" = allowed, except the ports in firewall.blocked_outbound (SMB, RDP, Telnet...).
FORWARD_DEFAULT: dict[tuple[str, str], Verdict] = {
    ("lan", "wan"): "outbound",
    ("lan", "lan"): "accept",
    ("lan", "devices"): "accept",
    ("guest", "wan"): "outbound",
    ("mgmt", "wan"): "outbound",
    ("mgmt", "lan"): "accept",
    ("mgmt", "devices"): "accept",
    ("mgmt", "mgmt"): "accept",
}


def forward_default(src: str, dst: str) -> Verdict:
    """Everything not in the table is dropped: wan->*, guest->internal, devices->*, vpn->* (per user)."""
    return FORWARD_DEFAULT.get((src, dst), "drop")


# What the box itself answers, per zone the packet comes from (the web UI is added per cfg.web.zones,
# never for wan or guest; the WireGuard port on wan when the VPN is on; the VPN portal from vpn).
# "ssh" (maintenance SSH) is open only while `ssh.enabled`; which zones may use it is this table, not
# the config, so sshd's ListenAddress lines and the firewall always agree.
BOX_SERVICES: dict[str, tuple[str, ...]] = {
    "wan": (),
    "lan": ("dhcp", "dns", "ntp", "ping", "ssh"),
    "mgmt": ("dhcp", "dns", "ntp", "ping", "ssh"),
    "guest": ("dhcp", "dns"),
    "devices": ("dhcp", "dns", "ntp"),
    "vpn": (),
}

# Port specs of the box's own services.
BOX_SERVICE_PORTS: dict[str, tuple[str, ...]] = {
    "dhcp": ("udp/67",),
    "dns": ("udp/53", "tcp/53"),
    "ntp": ("udp/123",),
    "ssh": ("tcp/22",),
}
# Services that exist only while their config section switches them on (`ssh.enabled` for "ssh").
SWITCHED_SERVICES: frozenset[str] = frozenset({"ssh"})

NEVER_WEB_ZONES: frozenset[str] = frozenset({"wan", "guest"})
