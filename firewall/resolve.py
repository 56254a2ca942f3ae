"""Resolve the names a rule uses (zones, hosts, groups, services) into what nft can match.

Pure and total for a config that passed `appliance.config.references.check_references`; a name it
cannot resolve (only possible for an unchecked config) resolves to nothing, so the rule opens nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from appliance.config.catalogue import BUILTIN_SERVICES, Service
from appliance.config.model import MamoriConfig
from appliance.config.references import zone_of_ip
from appliance.config.types import ALL_ZONES, INTERNAL_ZONES
from firewall.nftjson import Expr, anon, match, payload


@dataclass
class Endpoint:
    """Where one end of a rule lives: per zone, either "the whole zone" or a list of addresses/MACs."""

    whole_zones: set[str] = field(default_factory=set)
    v4: dict[str, list[str]] = field(default_factory=dict)
    v6: dict[str, list[str]] = field(default_factory=dict)
    macs: dict[str, list[str]] = field(default_factory=dict)

    def zones(self) -> set[str]:
        return self.whole_zones | set(self.v4) | set(self.v6) | set(self.macs)


def _add_host(cfg: MamoriConfig, ep: Endpoint, name: str) -> None:
    host = next((h for h in cfg.hosts if h.name == name), None)
    if host is None:
        return
    if host.ip:
        zone = zone_of_ip(cfg, host.ip)
        if zone is None:
            return
        bucket = ep.v4 if ipaddress.ip_address(host.ip).version == 4 else ep.v6
        bucket.setdefault(zone, []).append(host.ip)
    elif host.mac:
        # A MAC-only host may sit in any internal zone; a MAC only identifies a sender, never a destination.
        for zone in INTERNAL_ZONES:
            ep.macs.setdefault(zone, []).append(host.mac)


def endpoint(cfg: MamoriConfig, name: str) -> Endpoint:
    ep = Endpoint()
    if name in ALL_ZONES:
        ep.whole_zones.add(name)
        return ep
    group = next((g for g in cfg.groups if g.name == name), None)
    for member in group.members if group else [name]:
        _add_host(cfg, ep, member)
    return ep


def service(cfg: MamoriConfig, name: str | None) -> Service | None:
    if name is None:
        return None
    return BUILTIN_SERVICES.get(name) or next((s for s in cfg.services if s.name == name), None)


def _port_value(spec: str) -> int | dict:
    ports = spec.split("/", 1)[1]
    if "-" in ports:
        low, high = ports.split("-")
        return {"range": [int(low), int(high)]}
    return int(ports)


def port_matches(specs: list[str] | tuple[str, ...]) -> list[list[Expr]]:
    """One match list per protocol: ["tcp/445", "tcp/139", "udp/137"] -> tcp dport {445,139}; udp dport 137."""
    by_proto: dict[str, list] = {}
    for spec in specs:
        by_proto.setdefault(spec.split("/", 1)[0], []).append(_port_value(spec))
    return [[match(payload(proto, "dport"), anon(values))] for proto, values in sorted(by_proto.items())]


def service_matches(svc: Service | None, family: int | None) -> list[list[Expr]]:
    """Alternatives (each a list of matches) for a service; [[]] means "any service"."""
    if svc is None:
        return [[]]
    out = port_matches(svc.ports)
    if svc.icmp:
        if family in (None, 4):
            out.append([match(payload("icmp", "type"), "echo-request")])
        if family in (None, 6):
            out.append([match(payload("icmpv6", "type"), "echo-request")])
    return out
