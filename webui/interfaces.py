"""The network ports this box has, for the setup wizard (read with pyroute2 in the server's namespace)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyroute2 import IPRoute

log = logging.getLogger(__name__)
_SKIP_KINDS = ("wireguard", "bridge", "dummy")


@dataclass(frozen=True)
class Port:
    name: str
    mac: str
    up: bool
    addresses: tuple[str, ...]


def detect_ports() -> list[Port]:
    """Physical-looking ports (not loopback, not WireGuard or bridges Mamori made itself)."""
    ports: list[Port] = []
    with IPRoute() as ipr:
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr():
            addrs.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else None
            if name == "lo" or kind in _SKIP_KINDS:
                continue
            ports.append(
                Port(
                    name=name,
                    mac=link.get_attr("IFLA_ADDRESS") or "",
                    up=link.get_attr("IFLA_OPERSTATE") == "UP",
                    addresses=tuple(addrs.get(link["index"], [])),
                )
            )
    return sorted(ports, key=lambda p: p.name)
