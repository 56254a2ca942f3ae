"""Interfaces, VLANs, addresses, default route and forwarding: the `network` subsystem (via pyroute2).

It owns only what the config names: VLAN sub-interfaces it created and the addresses it added (recorded
in the kv table), so that an address removed from the config is removed from the box and nothing else
is touched. A wan interface set to "dhcp" is left to the system's DHCP client.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.subsystem import Context, Subsystem

log = logging.getLogger(__name__)
KV_KEY = "network.managed"


@dataclass(frozen=True)
class Link:
    name: str
    parent: str | None = None
    vlan: int | None = None
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkPlan:
    links: tuple[Link, ...]
    gateway: str | None
    forwarding: bool = True
    extra: dict = field(default_factory=dict)
    ipv6_auto: tuple[str, ...] = ()  # interfaces that take IPv6 address and default route from router adverts
    wan: str | None = None


def render_network(cfg: MamoriConfig) -> NetworkPlan:
    links = []
    gateway = None
    for iface in cfg.interfaces:
        addrs = tuple(a for a in (iface.address, iface.address6) if a and a != "dhcp")
        links.append(Link(iface.name, iface.parent, iface.vlan, addrs))
        if iface.gateway:
            gateway = iface.gateway
    auto = tuple(i.name for i in cfg.interfaces if i.ipv6_auto)
    wan = next((i.name for i in cfg.interfaces if i.zone == "wan"), None)
    return NetworkPlan(tuple(links), gateway, ipv6_auto=auto, wan=wan)


def ipv6_conf(plan: NetworkPlan) -> dict[str, dict[str, str]]:
    """Per-interface IPv6 settings (net.ipv6.conf.<name>.<key>) for the wan: with ipv6_auto, accept router
    advertisements although the box forwards (accept_ra=2: address by SLAAC and the default route from the
    router), with a stable address rather than temporary ones (the doctors' name points at it); without, the
    kernel's default (1: ignored while forwarding), so switching it off takes effect."""
    if plan.wan is None:
        return {}
    if plan.wan in plan.ipv6_auto:
        return {plan.wan: {"accept_ra": "2", "autoconf": "1", "use_tempaddr": "0"}}
    return {plan.wan: {"accept_ra": "1"}}


def _set_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


def _set_ipv6_conf(interface: str, key: str, value: str) -> None:
    """One net.ipv6.conf value of an interface (a VLAN's name has a dot, so no dotted sysctl name)."""
    Path("/proc/sys/net/ipv6/conf", interface, key).write_text(value)


class NetworkSubsystem(Subsystem):
    name = "network"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def render(self, cfg: MamoriConfig) -> NetworkPlan:
        return render_network(cfg)

    def check(self, plan: NetworkPlan) -> None:
        with IPRoute() as ipr:
            for link in plan.links:
                if link.parent:
                    if not ipr.link_lookup(ifname=link.parent):
                        raise ApplyError(
                            f"VLAN {link.name} の親インターフェース {link.parent} がこの機器にありません",
                            f"parent interface {link.parent} of VLAN {link.name} does not exist on this box",
                            code="network.no_parent",
                        )
                elif not ipr.link_lookup(ifname=link.name):
                    raise ApplyError(
                        f"インターフェース {link.name} がこの機器にありません（ケーブルやアダプターを確認してください）",
                        f"interface {link.name} does not exist on this box",
                        code="network.no_interface",
                    )

    def _managed(self) -> dict[str, list[str]]:
        raw = self.ctx.db.get_kv(KV_KEY)
        return json.loads(raw) if raw else {}

    def apply(self, plan: NetworkPlan) -> None:
        previous = self._managed()
        managed: dict[str, list[str]] = {}
        # Record the intent first (old and new addresses), so that restoring after a failure halfway
        # knows to remove the new addresses this run may already have added.
        intent = {name: list(addrs) for name, addrs in previous.items()}
        for link in plan.links:
            intent[link.name] = sorted(set(intent.get(link.name, [])) | set(link.addresses))
        self.ctx.db.set_kv(KV_KEY, json.dumps(intent))
        previous = intent
        try:
            with IPRoute() as ipr:
                for link in plan.links:
                    index = self._ensure_link(ipr, link)
                    managed[link.name] = list(link.addresses)
                    self._sync_addresses(ipr, index, link, previous.get(link.name, []))
                for name, addrs in previous.items():
                    if name not in managed:
                        self._drop_stale(ipr, name, addrs)
                if plan.gateway:
                    ipr.route("replace", dst="default", gateway=plan.gateway)
            _set_sysctl("net.ipv4.ip_forward", "1" if plan.forwarding else "0")
            _set_sysctl("net.ipv6.conf.all.forwarding", "1" if plan.forwarding else "0")
            for interface, values in ipv6_conf(plan).items():
                for key, value in values.items():
                    _set_ipv6_conf(interface, key, value)
        except (NetlinkError, OSError) as exc:
            raise ApplyError(
                f"ネットワーク設定を反映できませんでした: {exc}", f"could not apply network settings: {exc}"
            ) from exc
        self.ctx.db.set_kv(KV_KEY, json.dumps(managed))

    def _ensure_link(self, ipr: IPRoute, link: Link) -> int:
        found = ipr.link_lookup(ifname=link.name)
        if not found and link.parent:
            parent = ipr.link_lookup(ifname=link.parent)[0]
            ipr.link("add", ifname=link.name, kind="vlan", link=parent, vlan_id=link.vlan)
            found = ipr.link_lookup(ifname=link.name)
        index = found[0]
        ipr.link("set", index=index, state="up")
        return index

    def _sync_addresses(self, ipr: IPRoute, index: int, link: Link, previously: list[str]) -> None:
        live = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)}
        wanted = {str(ipaddress.ip_interface(a)) for a in link.addresses}
        # Remove before adding: deleting a primary address takes its secondaries in the same subnet along.
        for addr in set(previously) - wanted:
            if addr in live:
                iface = ipaddress.ip_interface(addr)
                ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        live = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)}
        for addr in wanted - live:
            iface = ipaddress.ip_interface(addr)
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)

    def _drop_stale(self, ipr: IPRoute, name: str, addrs: list[str]) -> None:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return
        self._sync_addresses(ipr, found[0], Link(name), addrs)

    def verify(self, plan: NetworkPlan) -> None:
        with IPRoute() as ipr:
            for link in plan.links:
                index = ipr.link_lookup(ifname=link.name)[0]
                live = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)}
                missing = {str(ipaddress.ip_interface(a)) for a in link.addresses} - live
                if missing:
                    raise ApplyError(
                        f"{link.name} にアドレス {', '.join(sorted(missing))} が設定されていません",
                        f"{link.name} lacks address(es) {', '.join(sorted(missing))}",
                    )


def subsystems(ctx: Context) -> list[NetworkSubsystem]:
    return [NetworkSubsystem(ctx)]
