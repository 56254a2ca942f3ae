"""The clinic's own rules rendered into match lists: custom allow rules, VPN user access, port forwards.

Each rule becomes the product of (source alternatives x destination alternatives x service alternatives x
schedule windows), keeping families consistent (an IPv4 source is never combined with an IPv6 destination).
Every rendered rule carries an anonymous counter and a comment naming the config rule it came from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from appliance.config.model import MamoriConfig
from firewall import nftjson as nj
from firewall.resolve import Endpoint, endpoint, service, service_matches
from firewall.schedule import ALL_DAYS, Window, windows
from firewall.setnames import vpn_set_name

Alt = tuple[int | None, list[nj.Expr]]  # (address family or None for "either", matches)


class RuleRenderer:
    def __init__(self, cfg: MamoriConfig, zones: dict[str, list[str]]) -> None:
        self.cfg = cfg
        self.zones = zones

    @staticmethod
    def window_matches(w: Window) -> list[nj.Expr]:
        exprs: list[nj.Expr] = []
        if len(w.days) < 7:
            exprs.append(nj.match(nj.meta("day"), nj.anon(list(w.days))))
        if (w.start_s, w.end_s) != (0, 86399):
            exprs.append(nj.match(nj.meta("hour"), {"range": [w.start_s, w.end_s]}))
        return exprs

    def _schedule_alts(self, name: str | None) -> list[list[nj.Expr]]:
        if name is None:
            return [[]]
        sched = next((s for s in self.cfg.firewall.schedules if s.name == name), None)
        if sched is None:
            return []  # unknown schedule: the rule never matches rather than always
        return [
            self.window_matches(w)
            for w in windows(sched.days, sched.start, sched.end, self.cfg.clinic.timezone)
        ]

    @staticmethod
    def _end_alts(ep: Endpoint, zone: str, field: str) -> list[Alt]:
        if zone in ep.whole_zones:
            return [(None, [])]
        alts: list[Alt] = []
        if ep.v4.get(zone):
            alts.append((4, [nj.match(nj.payload("ip", field), nj.anon(sorted(set(ep.v4[zone]))))]))
        if ep.v6.get(zone):
            alts.append((6, [nj.match(nj.payload("ip6", field), nj.anon(sorted(set(ep.v6[zone]))))]))
        if field == "saddr" and ep.macs.get(zone):
            alts.append((None, [nj.match(nj.payload("ether", "saddr"), nj.anon(sorted(set(ep.macs[zone]))))]))
        return alts

    def _product(
        self, srcs: list[Alt], dsts: list[Alt], svc_name: str | None, sched: list[list[nj.Expr]]
    ) -> Iterator[list[nj.Expr]]:
        svc = service(self.cfg, svc_name)
        for sfam, smatch in srcs:
            for dfam, dmatch in dsts:
                if sfam and dfam and sfam != dfam:
                    continue
                fam = sfam or dfam
                for svc_match in service_matches(svc, fam):
                    for when in sched:
                        yield [*smatch, *dmatch, *svc_match, *when, nj.counter(), nj.ACCEPT]

    def custom_rules(self, src_zone: str, dst_zone: str) -> Iterator[tuple[list[nj.Expr], str]]:
        for i, r in enumerate(self.cfg.firewall.rules):
            src, dst = endpoint(self.cfg, r.src), endpoint(self.cfg, r.dst)
            if src_zone not in src.zones() or dst_zone not in dst.zones():
                continue
            srcs = self._end_alts(src, src_zone, "saddr")
            dsts = self._end_alts(dst, dst_zone, "daddr")
            comment = f"rule {i}: {r.src} -> {r.dst} {r.service or 'any'}"
            for exprs in self._product(srcs, dsts, r.service, self._schedule_alts(r.schedule)):
                yield exprs, comment

    def vpn_rules(self, dst_zone: str) -> Iterator[tuple[list[nj.Expr], str]]:
        """A VPN user's tunnel address (in their own set) may reach exactly their access list."""
        for user in self.cfg.vpn.users:
            if not user.enabled:
                continue
            srcs: list[Alt] = [(4, [nj.match(nj.payload("ip", "saddr"), "@" + vpn_set_name(user.name))])]
            hours = [[]]
            if user.hours:
                wins = windows(ALL_DAYS, user.hours.start, user.hours.end, self.cfg.clinic.timezone)
                hours = [self.window_matches(w) for w in wins]
            for acc in user.access:
                dst = endpoint(self.cfg, acc.dst)
                if dst_zone not in dst.zones():
                    continue
                dsts = self._end_alts(dst, dst_zone, "daddr")
                comment = f"vpn {user.name} -> {acc.dst} {acc.service or 'any'}"
                for exprs in self._product(srcs, dsts, acc.service, hours):
                    yield exprs, comment

    def _forwards(self) -> Iterator[tuple[str, str, int | dict, int | None, str]]:
        hosts = {h.name: h for h in self.cfg.hosts}
        for i, fwd in enumerate(self.cfg.firewall.port_forwards):
            host = hosts.get(fwd.to_host)
            if host is None or host.ip is None or ipaddress.ip_address(host.ip).version != 4:
                continue
            proto, ports = fwd.port.split("/", 1)
            port: int | dict = (
                int(ports) if "-" not in ports else {"range": [int(p) for p in ports.split("-")]}
            )
            yield proto, host.ip, port, fwd.to_port, f"forward {i}: {fwd.port} -> {fwd.to_host}"

    def port_forwards(self) -> Iterator[tuple[list[nj.Expr], str]]:
        """DNAT on wan, only for what the config explicitly lists."""
        for proto, ip, port, to_port, comment in self._forwards():
            target: dict = {"family": "ip", "addr": ip}
            if to_port:
                target["port"] = to_port
            yield [nj.match(nj.payload(proto, "dport"), port), nj.counter(), {"dnat": target}], comment

    def forward_accepts(self, dst_zone: str) -> Iterator[list[nj.Expr]]:
        """In wan -> zone chains: let exactly the DNATed connections through."""
        from appliance.config.references import zone_of_ip

        for proto, ip, port, to_port, _comment in self._forwards():
            if zone_of_ip(self.cfg, ip) != dst_zone:
                continue
            yield [nj.match({"ct": {"key": "status"}}, "dnat", op="in"),
                   nj.match(nj.payload("ip", "daddr"), ip),
                   nj.match(nj.payload(proto, "dport"), to_port or port), nj.counter(), nj.ACCEPT]  # fmt: skip
