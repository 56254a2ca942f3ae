"""Checks that span sections of the config: names that must exist, subnets that must not overlap.

Returns errors (the config is refused) and warnings (it is accepted, but a person should know), each
with the field path, in both languages. Scope: consistency of the declaration only; whether an engine
accepts the rendered result is checked later, at apply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from appliance import areas
from appliance.area import load
from appliance.config.catalogue import BUILTIN_SERVICES
from appliance.config.model import MamoriConfig
from appliance.config.types import ALL_ZONES
from appliance.errors import FieldIssue, Message


@dataclass
class Findings:
    errors: list[FieldIssue] = field(default_factory=list)
    warnings: list[FieldIssue] = field(default_factory=list)

    def error(self, path: str, ja: str, en: str) -> None:
        self.errors.append(FieldIssue(path, Message(ja, en)))

    def warn(self, path: str, ja: str, en: str) -> None:
        self.warnings.append(FieldIssue(path, Message(ja, en)))


def zone_networks(cfg: MamoriConfig) -> dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """The networks each zone's interfaces are on, from their static addresses."""
    nets: dict[str, list] = {}
    for iface in cfg.interfaces:
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp":
                nets.setdefault(iface.zone, []).append(ipaddress.ip_interface(addr).network)
    if cfg.vpn.enabled:
        for addr in (cfg.vpn.address, cfg.vpn.address6):
            if addr:
                nets.setdefault("vpn", []).append(ipaddress.ip_interface(addr).network)
    return nets


def zone_of_ip(cfg: MamoriConfig, ip: str) -> str | None:
    addr = ipaddress.ip_address(ip)
    for zone, nets in zone_networks(cfg).items():
        if zone != "wan" and any(addr in n for n in nets):
            return zone
    return None


def _check_interfaces(cfg: MamoriConfig, f: Findings) -> None:
    seen: set[str] = set()
    for i, iface in enumerate(cfg.interfaces):
        path = f"interfaces[{i}]"
        if iface.name in seen:
            f.error(
                f"{path}.name", f"「{iface.name}」が2回定義されています", f"'{iface.name}' is defined twice"
            )
        seen.add(iface.name)
        if (iface.vlan is None) != (iface.parent is None):
            f.error(
                f"{path}.vlan",
                "VLAN を使うときは parent（親インターフェース）と vlan（番号）を両方指定してください",
                "a VLAN needs both parent and vlan",
            )
        if iface.zone != "wan" and iface.address in (None, "dhcp"):
            f.error(
                f"{path}.address",
                "院内側のゾーンには固定アドレスが必要です（例: 192.168.10.1/24）",
                "an internal zone needs a static address (e.g. 192.168.10.1/24)",
            )
        if iface.gateway and iface.address not in (None, "dhcp"):
            net = ipaddress.ip_interface(iface.address).network
            if ipaddress.ip_address(iface.gateway) not in net:
                f.error(
                    f"{path}.gateway",
                    f"ゲートウェイ {iface.gateway} は {iface.name} のネットワーク {net} の中にありません",
                    f"gateway {iface.gateway} is not inside {iface.name}'s network {net}",
                )
        if iface.zone != "wan" and iface.ipv6_auto:
            f.error(
                f"{path}.ipv6_auto",
                "ルーターから IPv6 アドレスを受け取る設定は WAN 側にだけできます",
                "only a wan interface may take its IPv6 address from the router (ipv6_auto)",
            )
        if iface.zone != "wan" and iface.gateway:
            f.error(
                f"{path}.gateway",
                "ゲートウェイは WAN 側にだけ設定できます",
                "only a wan interface may have a gateway",
            )
    wans = [i for i in cfg.interfaces if i.zone == "wan"]
    if len(wans) != 1:
        f.error(
            "interfaces",
            f"WAN（インターネット側）のインターフェースはちょうど1つ必要です（現在 {len(wans)} 個）",
            f"exactly one wan interface is required (found {len(wans)})",
        )
    if not any(i.zone == "lan" for i in cfg.interfaces):
        f.error("interfaces", "LAN（院内）のインターフェースが必要です", "a lan interface is required")
    flat = [(zone, net) for zone, nets in zone_networks(cfg).items() for net in nets]
    for a in range(len(flat)):
        for b in range(a + 1, len(flat)):
            if flat[a][1].version == flat[b][1].version and flat[a][1].overlaps(flat[b][1]):
                f.error(
                    "interfaces",
                    f"ネットワーク {flat[a][1]}（{flat[a][0]}）と {flat[b][1]}（{flat[b][0]}）が重なっています",
                    f"networks {flat[a][1]} ({flat[a][0]}) and {flat[b][1]} ({flat[b][0]}) overlap",
                )


def _check_names(cfg: MamoriConfig, f: Findings) -> set[str]:
    """Hosts and groups share one namespace with the zones; returns the names a rule may use."""
    names: set[str] = set(ALL_ZONES)
    for kind, items in (("hosts", cfg.hosts), ("groups", cfg.groups)):
        for i, item in enumerate(items):
            if item.name in names:
                f.error(
                    f"{kind}[{i}].name",
                    f"「{item.name}」は既に使われている名前です（ゾーン名・機器名・グループ名は重複できません）",
                    f"the name '{item.name}' is already used by a zone, host or group",
                )
            names.add(item.name)
    host_names = {h.name for h in cfg.hosts}
    for i, host in enumerate(cfg.hosts):
        if host.ip is None and host.mac is None:
            f.error(
                f"hosts[{i}]",
                "IPアドレスかMACアドレスのどちらかが必要です",
                "an IP or a MAC address is needed",
            )
        if host.ip and zone_of_ip(cfg, host.ip) is None:
            f.error(
                f"hosts[{i}].ip",
                f"{host.ip} は院内のどのネットワークにも属していません",
                f"{host.ip} is not in any internal network",
            )
    for i, group in enumerate(cfg.groups):
        for j, member in enumerate(group.members):
            if member not in host_names:
                f.error(
                    f"groups[{i}].members[{j}]",
                    f"「{member}」という機器は登録されていません",
                    f"no host named '{member}'",
                )
    return names


def _service_names(cfg: MamoriConfig, f: Findings) -> set[str]:
    names = set(BUILTIN_SERVICES)
    for i, svc in enumerate(cfg.services):
        if svc.name in names:
            f.error(
                f"services[{i}].name",
                f"「{svc.name}」は既にあるサービス名です",
                f"the service name '{svc.name}' already exists",
            )
        if not svc.ports and not svc.icmp:
            f.error(f"services[{i}].ports", "ポートを1つ以上指定してください", "give at least one port")
        names.add(svc.name)
    return names


def _unknown(f: Findings, path: str, kind_ja: str, kind_en: str, value: str) -> None:
    f.error(path, f"「{value}」という{kind_ja}はありません", f"there is no {kind_en} named '{value}'")


def _check_firewall(cfg: MamoriConfig, f: Findings, names: set[str], services: set[str]) -> None:
    fw = cfg.firewall
    schedules = {s.name for s in fw.schedules}
    seen_rules: dict[tuple, int] = {}
    for i, rule in enumerate(fw.rules):
        path = f"firewall.rules[{i}]"
        for end in ("src", "dst"):
            if getattr(rule, end) not in names:
                _unknown(
                    f, f"{path}.{end}", "ゾーン・機器・グループ", "zone, host or group", getattr(rule, end)
                )
        if rule.service and rule.service not in services:
            _unknown(f, f"{path}.service", "サービス", "service", rule.service)
        if rule.schedule and rule.schedule not in schedules:
            _unknown(f, f"{path}.schedule", "スケジュール", "schedule", rule.schedule)
        key = (rule.src, rule.dst, rule.service, rule.schedule)
        if key in seen_rules:
            f.warn(
                path,
                f"ルール {seen_rules[key]} と同じ内容です（重複）",
                f"duplicates rule {seen_rules[key]}",
            )
        elif (rule.src, rule.dst, None, rule.schedule) in seen_rules and rule.service:
            f.warn(
                path,
                "同じ送信元・宛先の全サービス許可ルールに含まれるため、このルールは効果がありません",
                "shadowed by an earlier rule allowing every service between the same ends",
            )
        seen_rules.setdefault(key, i)
    for zone, sched in fw.zone_schedules.items():
        if sched not in schedules:
            _unknown(f, f"firewall.zone_schedules.{zone}", "スケジュール", "schedule", sched)
    hosts = {h.name: h for h in cfg.hosts}
    for i, fwd in enumerate(fw.port_forwards):
        path = f"firewall.port_forwards[{i}]"
        host = hosts.get(fwd.to_host)
        if host is None or host.ip is None:
            f.error(
                f"{path}.to_host",
                f"「{fwd.to_host}」はIPアドレスのある登録機器ではありません",
                f"'{fwd.to_host}' is not a host with an IP address",
            )
        f.warn(
            path,
            f"インターネットから {fwd.to_host} の {fwd.port} へ接続できるようになります。本当に必要か確認してください",
            f"{fwd.port} on {fwd.to_host} becomes reachable from the internet; make sure it is needed",
        )


def _check_dhcp(cfg: MamoriConfig, f: Findings) -> None:
    nets = zone_networks(cfg)
    for i, rng in enumerate(cfg.dhcp.ranges):
        path = f"dhcp.ranges[{i}]"
        if rng.zone == "wan":
            f.error(f"{path}.zone", "WAN 側では DHCP を配布できません", "DHCP is never served on wan")
            continue
        start, end = ipaddress.ip_address(rng.start), ipaddress.ip_address(rng.end)
        inside = [n for n in nets.get(rng.zone, []) if start in n and end in n]
        if not inside:
            f.error(
                path,
                f"{rng.start}〜{rng.end} はゾーン {rng.zone} のネットワークの中にありません",
                f"{rng.start}-{rng.end} is not inside a network of zone {rng.zone}",
            )
        elif start > end:
            f.error(path, "開始アドレスが終了アドレスより後です", "start is after end")


def _check_vpn(cfg: MamoriConfig, f: Findings, names: set[str], services: set[str]) -> None:
    seen: set[str] = set()
    for i, user in enumerate(cfg.vpn.users):
        path = f"vpn.users[{i}]"
        if user.name in seen:
            f.error(
                f"{path}.name", f"「{user.name}」が2回定義されています", f"'{user.name}' is defined twice"
            )
        seen.add(user.name)
        for j, acc in enumerate(user.access):
            if acc.dst not in names:
                _unknown(
                    f, f"{path}.access[{j}].dst", "ゾーン・機器・グループ", "zone, host or group", acc.dst
                )
            if acc.service and acc.service not in services:
                _unknown(f, f"{path}.access[{j}].service", "サービス", "service", acc.service)


def _check_misc(cfg: MamoriConfig, f: Findings) -> None:
    ifnames = {i.name for i in cfg.interfaces}
    for i, name in enumerate(cfg.ids.interfaces):
        if name not in ifnames:
            _unknown(f, f"ids.interfaces[{i}]", "インターフェース", "interface", name)
    for i, zone in enumerate(cfg.web.zones):
        if zone in ("wan", "guest"):
            f.error(
                f"web.zones[{i}]",
                "管理画面は WAN やゲスト Wi-Fi からは開けません",
                "the web UI is never reachable from wan or guest",
            )


def _check_areas(cfg: MamoriConfig, f: Findings) -> None:
    """Each area's own checks across sections (appliance.area.Area.checks), in the areas' order: the relay
    path needs the management link, sshd and /metrics listen only on the box's inside addresses, the
    management link never opens into the clinic, logs leave by a way that reaches the collector."""
    for area in areas.AREAS:
        for ref in area.checks:
            for path, ja, en in load(ref)(cfg):
                f.error(path, ja, en)


def check_references(cfg: MamoriConfig) -> Findings:
    f = Findings()
    _check_interfaces(cfg, f)
    names = _check_names(cfg, f)
    services = _service_names(cfg, f)
    _check_firewall(cfg, f, names, services)
    _check_dhcp(cfg, f)
    _check_vpn(cfg, f, names, services)
    _check_misc(cfg, f)
    _check_areas(cfg, f)
    return f
