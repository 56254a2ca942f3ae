"""Pure renderers of the VPN: the server's interface plan and peer list, and a device's client .conf.

Nothing here reads or writes: the stored devices are passed in. Why the peer list depends on the config
too: only devices of users that are named in `vpn.users` and enabled become peers, so removing or
disabling a user in the config takes his keys off the interface (he can no longer even handshake).

Two steps, because devices are state, not config: `render_interface` is what the config alone says (the
subsystem's render, a pure function of the model); `InterfacePlan.with_devices` adds the peers from the
devices stored at the moment the plan is applied (vpn.subsystem, vpn.provision).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, fields

from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from vpn.lines import box_mtu, choose_path, client_mtu, comment_for, endpoint_for
from vpn.store import Device

PROBE_USER = "(probe)"  # not a valid user name: a probe peer is never taken for a device


class RenderError(MamoriError):
    code = "vpn.render"


@dataclass(frozen=True)
class ServerPeer:
    public_key: str
    allowed_ips: tuple[str, ...]
    user: str
    device: str


@dataclass(frozen=True)
class InterfacePlan:
    """What the config alone says about the WireGuard interface: everything but the peers. The private key is
    a file path, never the key. `users`: the enabled users named in the config, whose devices may be peers."""

    enabled: bool
    ifname: str
    address: str
    address6: str | None
    listen_port: int
    users: frozenset[str]
    mtu: int | None = None  # None: WireGuard's default; smaller while the relay may carry doctors
    probes: tuple[tuple[str, str], ...] = ()  # (family, public key) of the outside prober, allowed nothing

    def with_devices(self, devices: Iterable[Device]) -> ServerPlan:
        """The whole plan with these stored devices as peers (active devices of enabled users only), and the
        prober's keys with no AllowedIPs (a handshake, never a packet: vpn/reach.py)."""
        device_peers = tuple(
            ServerPeer(d.public_key, device_allowed_ips(d), d.user, d.device)
            for d in sorted(devices, key=lambda d: d.id)
            if d.active and d.user in self.users
        )
        # A probe key that is also a device's key is left out: one key is one peer in WireGuard, and the
        # probe's empty AllowedIPs would otherwise take the doctor's addresses away (whoever set vpn.probe).
        taken = {p.public_key for p in device_peers}
        peers = device_peers + tuple(
            ServerPeer(key, (), PROBE_USER, family) for family, key in self.probes if key not in taken
        )
        base = {f.name: getattr(self, f.name) for f in fields(InterfacePlan)}
        return ServerPlan(**base, peers=peers if self.enabled else ())


@dataclass(frozen=True)
class ServerPlan(InterfacePlan):
    """What the WireGuard interface should look like, peers included."""

    peers: tuple[ServerPeer, ...] = ()

    def interface_plan(self) -> InterfacePlan:
        return InterfacePlan(**{f.name: getattr(self, f.name) for f in fields(InterfacePlan)})

    def peer_map(self) -> dict[str, tuple[str, ...]]:
        return {p.public_key: p.allowed_ips for p in self.peers}


def device_allowed_ips(device: Device) -> tuple[str, ...]:
    """The source addresses the box accepts from this device: exactly its tunnel addresses (anti-spoofing)."""
    ips = [f"{device.ip4}/32"]
    if device.ip6:
        ips.append(f"{device.ip6}/128")
    return tuple(ips)


def render_interface(cfg: MamoriConfig, ifname: str | None = None) -> InterfacePlan:
    """`ifname` overrides `vpn.interface` (tests and benches need names unique on the machine)."""
    return InterfacePlan(
        enabled=cfg.vpn.enabled, ifname=ifname or cfg.vpn.interface, address=cfg.vpn.address,
        address6=cfg.vpn.address6, listen_port=cfg.vpn.listen_port,
        users=frozenset(u.name for u in cfg.vpn.users if u.enabled), mtu=box_mtu(cfg),
        probes=tuple(cfg.vpn.probe.model_dump().items()) if cfg.vpn.probe else (),
    )  # fmt: skip


def render_server(cfg: MamoriConfig, devices: Iterable[Device], ifname: str | None = None) -> ServerPlan:
    """The interface and its peers for these devices."""
    return render_interface(cfg, ifname).with_devices(devices)


def access_networks(cfg: MamoriConfig, user_name: str) -> list[str]:
    """Networks a user's device should route into the tunnel: the VPN net and his access destinations.

    Routing is a convenience for the client; the firewall is what enforces the access list.
    """
    hosts = {h.name: h.ip for h in cfg.hosts if h.ip}
    groups = {g.name: g.members for g in cfg.groups}
    zones: dict[str, list[str]] = {}
    for iface in cfg.interfaces:
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp":
                zones.setdefault(iface.zone, []).append(str(ipaddress.ip_interface(addr).network))
    nets = [str(ipaddress.ip_interface(cfg.vpn.address).network)]
    if cfg.vpn.address6:
        nets.append(str(ipaddress.ip_interface(cfg.vpn.address6).network))
    user = next((u for u in cfg.vpn.users if u.name == user_name), None)
    if user is None:
        raise RenderError(
            f"VPN 利用者「{user_name}」は設定にありません", f"no VPN user '{user_name}' in the config"
        )
    for acc in user.access:
        names = groups.get(acc.dst, [acc.dst])
        for name in names:
            if name in hosts:
                ip = ipaddress.ip_address(hosts[name])
                nets.append(f"{ip}/{ip.max_prefixlen}")
            nets.extend(zones.get(name, []))
    return list(dict.fromkeys(nets))


def _endpoint(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def client_conf(
    cfg: MamoriConfig, device: Device, server_public_key: str, private_key: str | None = None,
    path: str | None = None,
) -> str:  # fmt: skip
    """The device's wg-quick .conf. Without `private_key` (bring-your-own key) a placeholder line is left
    for the user to fill in on his own device, so the private key never passes through the box. `path`
    (vpn/lines.py): direct, ipv6 or relay; None is `vpn.path` with nothing known about reachability."""
    path = path or choose_path(cfg)
    host, port = endpoint_for(cfg, path)
    if not host:
        raise RenderError(
            "vpn.endpoint（インターネットから見たこの機器のアドレスまたは名前）を設定してください",
            "set vpn.endpoint (the box's address or name as seen from the internet)",
        )
    addresses = [f"{device.ip4}/32"] + ([f"{device.ip6}/128"] if device.ip6 else [])
    mtu = client_mtu(path)
    lines = [
        f"# Mamori VPN: {device.user} / {device.device}",
        comment_for(cfg, path),
        "[Interface]",
        f"PrivateKey = {private_key}"
        if private_key
        else "# PrivateKey = (この端末で作った秘密鍵 / your own private key)",
        f"Address = {', '.join(addresses)}",
        *([f"MTU = {mtu}"] if mtu else []),
        "",
        "[Peer]",
        f"PublicKey = {server_public_key}",
        f"Endpoint = {_endpoint(host, port)}",
        f"AllowedIPs = {', '.join(access_networks(cfg, device.user))}",
        "PersistentKeepalive = 25",
        "",
    ]
    _one_line_each(lines)
    return "\n".join(lines)


def _one_line_each(lines: list[str]) -> None:
    """Defence in depth: a value with a line break would add its own lines (a `[Peer]` of an attacker's
    choosing) to a file the device trusts; every value is checked again here, whatever checked it before."""
    for line in lines:
        if any(ch in line for ch in "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
            raise RenderError(
                "VPN 設定ファイルに改行を含む値は書けません", f"refusing a client .conf value with a line break: {line[:60]!r}",
            )  # fmt: skip
