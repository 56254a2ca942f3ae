"""Config model -> one libnftables JSON batch that replaces the `inet mamori` table whole.

Pure: no I/O, no clock, no environment (schedules are converted to UTC here, see firewall.schedule).
The batch adds the table, deletes it and adds it again with everything in it, so it applies in one
kernel transaction whether or not the table existed, and never touches any other table. Dynamic set
contents (blocked addresses, VPN sessions) are not rendered here; firewall.apply re-seeds them.

Layout (details and the zone-to-zone table in docs/firewall.md):
  input / forward (hooks, policy drop) -> guard (allowlist first, then blocked/feed sets) -> quarantine
  -> ct state -> dispatch by interface to in_<zone> / fwd_<src>_<dst> -> default verdict of policy.py.
Every chain an admin cares about has a named counter of the same name; every drop goes through a
d_... chain that logs (rate-limited, NFLOG group LOG_GROUP, prefix naming zone pair and reason) and counts.
A connection a VPN user's tunnel is refused through the box is also logged to VPN_LOG_GROUP, whatever
`firewall.log_drops` says: remote maintenance is recorded for the clinic (vpn/connlog.py reads it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from appliance.config.model import MamoriConfig
from appliance.ports import WEB_REDIRECT_PORT
from firewall import nftjson as nj
from firewall.policy import (
    BOX_SERVICE_PORTS,
    BOX_SERVICES,
    NEVER_WEB_ZONES,
    SWITCHED_SERVICES,
    forward_default,
)
from firewall.render_rules import RuleRenderer
from firewall.resolve import port_matches
from firewall.schedule import windows
from firewall.setnames import vpn_set_name
from mgmt.model import LINK_ZONE, link_ports
from vpn.lines import link_needs_vpn_port

VPN_INTERFACE = "mamori-wg"  # the default of cfg.vpn.interface
VPN_PORTAL_PORT = 8443
VPN_PORTAL_PORTS: tuple[int, ...] = (443, VPN_PORTAL_PORT)
LOG_GROUP = 7
LOG_RATE_PER_MINUTE = 30
# Refused vpn -> * connections (first packet only), read by the VPN area's connection log; its own group
# because only one listener may bind a group, and its own limit so other drops cannot crowd it out.
VPN_LOG_GROUP = 8
VPN_LOG_RATE_PER_MINUTE = 60
TIMEOUT_SETS: dict[str, str] = {"blocked4": "ipv4_addr", "blocked6": "ipv6_addr", "quarantine4": "ipv4_addr"}
INTERVAL_SETS: dict[str, str] = {
    "allow4": "ipv4_addr",
    "allow6": "ipv6_addr",
    "feed4": "ipv4_addr",
    "feed6": "ipv6_addr",
}
DYNAMIC_SETS: tuple[str, ...] = ("blocked4", "blocked6", "quarantine4", "feed4", "feed6")


def zone_interfaces(cfg: MamoriConfig, vpn_interface: str | None = None) -> dict[str, list[str]]:
    zones: dict[str, list[str]] = {}
    for iface in cfg.interfaces:
        zones.setdefault(iface.zone, []).append(iface.name)
    if cfg.vpn.enabled:
        zones.setdefault("vpn", []).append(vpn_interface or cfg.vpn.interface)
    return zones


def render_ruleset(
    cfg: MamoriConfig,
    vpn_users: Mapping[str, Sequence[str]] | None = None,
    *,
    vpn_interface: str | None = None,
) -> dict[str, Any]:
    """The whole `inet mamori` table for `cfg`.

    `vpn_users` optionally maps a VPN user name to tunnel addresses admitted without a timeout (static
    peers); sessions admitted at run time go through firewall.sets.admit_vpn and survive a rebuild.
    `vpn_interface` overrides cfg.vpn.interface (default VPN_INTERFACE); the lab gives each box its own.
    """
    return {"nftables": _Renderer(cfg, vpn_users or {}, vpn_interface or cfg.vpn.interface).build()}


class _Renderer:
    def __init__(self, cfg: MamoriConfig, vpn_users: Mapping[str, Sequence[str]], vpn_interface: str) -> None:
        self.cfg = cfg
        self.vpn_users = vpn_users
        self.zones = zone_interfaces(cfg, vpn_interface)
        self.chains: list[dict] = []
        self.counters: list[str] = []
        self.rules: list[dict] = []
        self.rule_renderer = RuleRenderer(cfg, self.zones)

    # -- plumbing -------------------------------------------------------------------------------------
    def chain(
        self, name: str, hook: str | None = None, prio: int = 0, kind: str = "filter", policy: str = "drop"
    ) -> str:
        body: dict[str, Any] = {"name": name}
        if hook:
            body.update(type=kind, hook=hook, prio=prio, policy=policy)
        self.chains.append(nj.add("chain", body))
        return name

    def counted_chain(self, name: str) -> str:
        self.chain(name)
        self.counters.append(name)
        self.add(name, [nj.counter(name)])
        return name

    def add(self, chain: str, exprs: list[nj.Expr], comment: str = "") -> None:
        self.rules.append(nj.rule(chain, exprs, comment))

    def drop_chain(self, where: str, reason: str) -> str:
        """A chain that logs (rate-limited) and counts a drop; its name and counter are d_<where>_<reason>."""
        name = f"d_{where}_{reason}".replace(">", "_")
        if name in self.counters:
            return name
        self.chain(name)
        self.counters.append(name)
        if self.cfg.firewall.log_drops:
            prefix = f"mamori drop {where} {reason}: "
            self.add(name, [{"limit": {"rate": LOG_RATE_PER_MINUTE, "per": "minute", "burst": 10}},
                            {"log": {"prefix": prefix, "group": LOG_GROUP}}])  # fmt: skip
        self.add(name, [nj.counter(name), nj.DROP])
        return name

    # -- assembly -------------------------------------------------------------------------------------
    def build(self) -> list[dict]:
        table = {"family": nj.FAMILY, "name": nj.TABLE}
        head = [
            {"add": {"table": dict(table)}},
            {"delete": {"table": dict(table)}},
            {"add": {"table": dict(table)}},
        ]
        sets = self.sets()
        self.guard()
        self.input_chain()
        self.forward_chain()
        self.nat()
        counters = [nj.add("counter", {"name": n}) for n in self.counters]
        return [*head, *sets, *counters, *self.chains, *self.rules]

    def sets(self) -> list[dict]:
        out = []
        for name, kind in TIMEOUT_SETS.items():
            out.append(nj.add("set", {"name": name, "type": kind, "flags": ["timeout"]}))
        for name, kind in INTERVAL_SETS.items():
            body: dict[str, Any] = {"name": name, "type": kind, "flags": ["interval"]}
            if name.startswith("allow"):
                version = 4 if name.endswith("4") else 6
                elems = [nj.addr_value(n) for n in self.cfg.firewall.allowlist
                         if ipaddress.ip_network(n).version == version]  # fmt: skip
                if elems:
                    body["elem"] = elems
            out.append(nj.add("set", body))
        for user in self.cfg.vpn.users:
            body = {"name": vpn_set_name(user.name), "type": "ipv4_addr", "flags": ["timeout"]}
            if self.vpn_users.get(user.name):
                body["elem"] = sorted(self.vpn_users[user.name])
            out.append(nj.add("set", body))
        return out

    def guard(self) -> None:
        """Allowlist first (never blocked), then the block and feed sets, both directions."""
        self.chain("guard")
        self.add("guard", [nj.match(nj.payload("ip", "saddr"), "@allow4"), nj.RETURN])
        self.add("guard", [nj.match(nj.payload("ip6", "saddr"), "@allow6"), nj.RETURN])
        for fam, proto in (("4", "ip"), ("6", "ip6")):
            for kind in ("blocked", "feed"):
                drop = self.drop_chain("any", kind)
                for field in ("saddr", "daddr"):
                    self.add("guard", [nj.match(nj.payload(proto, field), f"@{kind}{fam}"), nj.jump(drop)])

    def input_chain(self) -> None:
        self.chain("input", hook="input")
        self.add("input", [nj.match(nj.meta("iifname"), "lo"), nj.ACCEPT])
        self.add("input", [nj.jump("guard")])
        self.quarantine_in()
        self.add("input", [nj.match(nj.payload("ip", "saddr"), "@quarantine4"), nj.jump("in_quarantine")])
        self.add("input", [nj.ct_state("invalid"), nj.DROP])
        dispatch = []
        for zone, names in sorted(self.zones.items()):
            chain = self.input_zone(zone)
            dispatch.extend([name, nj.jump(chain)] for name in sorted(names))
        if self.cfg.mgmt.enabled:
            dispatch.append([self.cfg.mgmt.interface, nj.jump(self.link_input())])
        if dispatch:
            self.add("input", [{"vmap": {"key": nj.meta("iifname"), "data": {"set": dispatch}}}])
        self.add("input", [nj.jump(self.drop_chain("in", "unknown-interface"))])

    def link_input(self) -> str:
        """The vendor hub's management link (mgmt/): only the box's own services of mgmt.model.link_ports,
        only on the box's tunnel address, and ping; everything else from the hub is dropped and logged."""
        mgmt = self.cfg.mgmt
        chain = self.counted_chain(f"in_{LINK_ZONE}")
        self.add(chain, [nj.ct_state("established", "related"), nj.ACCEPT])
        ip = ipaddress.ip_address(mgmt.address)
        daddr = nj.match(nj.payload("ip" if ip.version == 4 else "ip6", "daddr"), str(ip))
        ping = nj.match(nj.payload("icmp" if ip.version == 4 else "icmpv6", "type"), "echo-request")
        self.add(chain, [daddr, ping, nj.ACCEPT], comment="ping of the box over the management link")
        for matches in port_matches(link_ports(self.cfg)):
            self.add(chain, [daddr, *matches, nj.ACCEPT], comment="box service over the management link")
        # Doctors' WireGuard relayed by the hub (still encrypted) or the hub's link probe: only while the
        # config uses one of them (vpn.lines.link_needs_vpn_port); else the link never reaches the VPN port.
        if link_needs_vpn_port(self.cfg):
            self.add(chain, [daddr, *port_matches([f"udp/{self.cfg.vpn.listen_port}"])[0], nj.ACCEPT],
                     comment="VPN relayed or probed by the hub (encrypted)")  # fmt: skip
        self.add(chain, [nj.jump(self.drop_chain(f"{LINK_ZONE}>box", "policy"))])
        return chain

    def quarantine_in(self) -> None:
        """A quarantined host may reach the box's web UI (to see why) and DHCP (to keep its address)."""
        self.counted_chain("in_quarantine")
        web_ifs = [n for z in self.cfg.web.zones if z not in NEVER_WEB_ZONES for n in self.zones.get(z, [])]
        if web_ifs:
            self.add(
                "in_quarantine",
                [nj.ifnames(web_ifs), *port_matches([f"tcp/{self.cfg.web.port}"])[0], nj.ACCEPT],
            )
        self.add("in_quarantine", [*port_matches(["udp/67"])[0], nj.ACCEPT])
        self.add("in_quarantine", [nj.jump(self.drop_chain("quarantine", "quarantine"))])

    def input_zone(self, zone: str) -> str:
        chain = self.counted_chain(f"in_{zone}")
        self.add(chain, [nj.ct_state("established", "related"), nj.ACCEPT])
        nd = ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit", "nd-router-advert"]
        self.add(chain, [nj.match(nj.payload("icmpv6", "type"), {"set": nd}),
                         nj.match(nj.payload("ip6", "hoplimit"), 255), nj.ACCEPT])  # fmt: skip
        for matches in self.box_service_matches(zone):
            self.add(chain, [*matches, nj.ACCEPT], comment=f"box service for {zone}")
        for matches in self.metrics_matches(zone):
            self.add(chain, [*matches, nj.ACCEPT], comment=f"metrics for {zone}")
        self.add(chain, [nj.jump(self.drop_chain(f"{zone}>box", "policy"))])
        return chain

    def switched_on(self, service: str) -> bool:
        """Whether a service of SWITCHED_SERVICES is switched on in the config (only "ssh" today)."""
        return service == "ssh" and self.cfg.ssh.enabled

    def box_service_matches(self, zone: str) -> list[list[nj.Expr]]:
        cfg = self.cfg
        on = [
            svc for svc in BOX_SERVICES.get(zone, ()) if svc not in SWITCHED_SERVICES or self.switched_on(svc)
        ]
        specs = [p for svc in on for p in BOX_SERVICE_PORTS.get(svc, ())]
        if zone in cfg.web.zones and zone not in NEVER_WEB_ZONES:
            specs.append(f"tcp/{cfg.web.port}")
            specs.append(f"tcp/{WEB_REDIRECT_PORT}")  # plain HTTP only ever answers with a redirect to HTTPS
        out = port_matches(specs) if specs else []
        if "ping" in BOX_SERVICES.get(zone, ()):
            out += [[nj.match(nj.payload("icmp", "type"), "echo-request")],
                    [nj.match(nj.payload("icmpv6", "type"), "echo-request")]]  # fmt: skip
        if zone == "wan" and cfg.vpn.enabled:
            out.append(port_matches([f"udp/{cfg.vpn.listen_port}"])[0])
        if zone == "wan" and any(i.address == "dhcp" for i in cfg.interfaces if i.zone == "wan"):
            out.append([nj.match(nj.payload("udp", "sport"), 67), nj.match(nj.payload("udp", "dport"), 68)])
        if zone == "vpn" and cfg.vpn.enabled:
            box = str(ipaddress.ip_interface(cfg.vpn.address).ip)
            out.append([nj.match(nj.payload("ip", "daddr"), box),
                        nj.match(nj.payload("tcp", "dport"), {"set": list(VPN_PORTAL_PORTS)})])  # fmt: skip
        return out

    def metrics_matches(self, zone: str) -> list[list[nj.Expr]]:
        """/metrics (metrics.listen): each port only on its own address, only from metrics.zones, never from
        wan or guest whatever a raw model says (the config validation refuses such addresses too)."""
        cfg = self.cfg
        if zone not in cfg.metrics.zones or zone in NEVER_WEB_ZONES:
            return []
        return [[nj.match(nj.payload("ip" if ep.version == 4 else "ip6", "daddr"), ep.address),
                 nj.match(nj.payload("tcp", "dport"), ep.port)] for ep in cfg.metrics.endpoints()]  # fmt: skip

    def forward_chain(self) -> None:
        self.chain("forward", hook="forward")
        # The vendor hub's link never reaches a clinic zone, nor a zone it: first, before the allowlist and
        # every rule, and rendered whether or not the link is on, so no config can ever open it.
        never = self.drop_chain(f"{LINK_ZONE}>any", "never")
        for direction in ("iifname", "oifname"):
            self.add("forward", [nj.match(nj.meta(direction), self.cfg.mgmt.interface), nj.jump(never)],
                     comment="management link: never forwarded")  # fmt: skip
        self.add("forward", [nj.jump("guard")])
        qdrop = self.drop_chain("quarantine", "quarantine")
        for field in ("saddr", "daddr"):
            self.add("forward", [nj.match(nj.payload("ip", field), "@quarantine4"), nj.jump(qdrop)])
        self.add("forward", [nj.ct_state("invalid"), nj.DROP])
        dispatch = []
        for src in sorted(self.zones):
            for dst in sorted(self.zones):
                chain = self.pair_chain(src, dst)
                for i in sorted(self.zones[src]):
                    dispatch.extend([{"concat": [i, o]}, nj.jump(chain)] for o in sorted(self.zones[dst]))
        key = {"concat": [nj.meta("iifname"), nj.meta("oifname")]}
        self.add("forward", [{"vmap": {"key": key, "data": {"set": dispatch}}}])
        self.add("forward", [nj.jump(self.drop_chain("fwd", "unknown-interface"))])

    def pair_chain(self, src: str, dst: str) -> str:
        chain = self.counted_chain(f"fwd_{src}_{dst}")
        sched = self.cfg.firewall.zone_schedules.get(src)  # type: ignore[call-overload]
        if sched:
            self.add(chain, [nj.jump(self.zone_schedule_chain(src, sched))])
        self.add(chain, [nj.ct_state("established", "related"), nj.ACCEPT])
        verdict = forward_default(src, dst)
        if verdict == "outbound" and self.cfg.firewall.blocked_outbound:
            drop = self.drop_chain(f"{src}>{dst}", "blocked-outbound")
            for matches in port_matches(self.cfg.firewall.blocked_outbound):
                self.add(chain, [*matches, nj.jump(drop)])
        if src == "wan":
            for fwd in self.rule_renderer.forward_accepts(dst):
                self.add(chain, fwd)
        for exprs, comment in self.rule_renderer.vpn_rules(dst) if src == "vpn" else []:
            self.add(chain, exprs, comment)
        for exprs, comment in self.rule_renderer.custom_rules(src, dst):
            self.add(chain, exprs, comment)
        if verdict == "drop" and src == "vpn":
            self.add(chain, [nj.ct_state("new"),
                             {"limit": {"rate": VPN_LOG_RATE_PER_MINUTE, "per": "minute", "burst": 20}},
                             {"log": {"prefix": f"mamori vpn refused {src}>{dst}: ", "group": VPN_LOG_GROUP}}],
                     comment="vpn connection log")  # fmt: skip
        if verdict == "drop":
            self.add(chain, [nj.jump(self.drop_chain(f"{src}>{dst}", "policy"))])
        else:
            self.add(chain, [nj.ACCEPT])
        return chain

    def zone_schedule_chain(self, zone: str, sched_name: str) -> str:
        name = f"sched_{zone}"
        if name in self.counters:
            return name
        self.counted_chain(name)
        sched = next((s for s in self.cfg.firewall.schedules if s.name == sched_name), None)
        if sched is not None:
            for w in windows(sched.days, sched.start, sched.end, self.cfg.clinic.timezone):
                self.add(name, [*RuleRenderer.window_matches(w), nj.RETURN], comment=f"open: {sched_name}")
        self.add(name, [nj.jump(self.drop_chain(f"{zone}>any", "schedule"))])
        return name

    def nat(self) -> None:
        wan = self.zones.get("wan", [])
        self.chain("postrouting", hook="postrouting", prio=100, kind="nat", policy="accept")
        if wan:
            self.add("postrouting", [nj.oifnames(wan), {"masquerade": None}])
        self.chain("prerouting", hook="prerouting", prio=-100, kind="nat", policy="accept")
        for exprs, comment in self.rule_renderer.port_forwards():
            self.add("prerouting", [nj.ifnames(wan), *exprs], comment)
