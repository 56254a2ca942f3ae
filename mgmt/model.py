"""The `mgmt:` section of the config: the vendor hub the box dials out to, and the box's own tunnel address.

Keys are state, not config: the box makes its own private key on first use (keys dir, 0600) and never sends
it anywhere; only the hub's public key is written here. Off by default. When on, every field must be set:
the hub's endpoint (host:port), its public key, the box's tunnel address inside the hub network, and the
hub's own tunnel address(es), which become the only AllowedIPs of the one peer. The hub network must not
overlap any clinic network (`link_issues`, called from appliance.config.references), so that a route into
the tunnel can never shadow a clinic network.

`LINK_ZONE` is the firewall's name for the link; it is not a config zone (ZoneName), so no rule, VPN
access or DHCP range can name it (and the references check says so in plain words if one tries).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field, model_validator

from appliance.config.types import InterfaceName, IPAddress, Network, Strict, is_host_name, mamori_error

if TYPE_CHECKING:
    from appliance.config.model import MamoriConfig

LINK_ZONE = "mgmt-link"
DEFAULT_INTERFACE = "mamori-mgmt"
DEFAULT_KEEPALIVE = 25


def split_endpoint(value: str) -> tuple[str, int]:
    """'hub.example.jp:51820', '203.0.113.5:51820' or '[2001:db8::5]:51820' -> (host, port)."""
    bad = mamori_error(
        f"「{value}」は「ホスト名:ポート」の形式ではありません（例: hub.example.jp:51820、[2001:db8::1]:51820）",
        f"'{value}' is not host:port (e.g. hub.example.jp:51820 or [2001:db8::1]:51820)",
    )
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            raise bad from None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not is_host_name(host):
            raise bad from None
        return host.lower(), int(port)
    if ip.version == 6:
        raise bad  # an IPv6 address must be bracketed, or the port is ambiguous
    return str(ip), int(port)


def _check_endpoint(value: str) -> str:
    if value == "":
        return value
    host, port = split_endpoint(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_wg_key(value: str) -> str:
    from vpn.keys import is_valid_key

    if value and not is_valid_key(value):
        raise mamori_error(
            "保守業者の公開鍵の形式が正しくありません（WireGuard の公開鍵は44文字で「=」で終わります）",
            "not a WireGuard public key (44 base64 characters ending in '=')",
        )
    return value


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
WgPublicKey = Annotated[str, AfterValidator(_check_wg_key)]


class MgmtConfig(Strict):
    """`enabled: false` (the default): no interface, no key used, nothing reachable."""

    enabled: bool = False
    hub_endpoint: Endpoint = Field(default="", max_length=260)
    hub_public_key: WgPublicKey = ""
    network: Network | None = None  # the hub's tunnel network, e.g. 10.77.0.0/16
    address: IPAddress | None = None  # the box's own tunnel address inside it (rendered as /32 or /128)
    hub_addresses: list[IPAddress] = Field(default_factory=list, max_length=4)
    # WireGuard interface; UAPI sockets in /var/run/wireguard are global, so the lab gives each box its own.
    interface: InterfaceName = DEFAULT_INTERFACE
    keepalive: int = Field(default=DEFAULT_KEEPALIVE, ge=10, le=120)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> MgmtConfig:
        if self.enabled:
            missing = [name for name in ("hub_endpoint", "hub_public_key", "network", "address", "hub_addresses")
                       if not getattr(self, name)]  # fmt: skip
            if missing:
                raise mamori_error(
                    "保守業者の管理接続を有効にするには、登録コードの内容（"
                    + "、".join(missing)
                    + "）がすべて必要です",
                    "the management link needs " + ", ".join(missing),
                )
        if self.network is None:
            return self
        net = ipaddress.ip_network(self.network)
        for label, ip in [("address", self.address), *(("hub_addresses", h) for h in self.hub_addresses)]:
            if ip is not None and ipaddress.ip_address(ip) not in net:
                raise mamori_error(
                    f"{label} の {ip} が保守業者のネットワーク {net} の中にありません",
                    f"{label} {ip} is not inside the hub network {net}",
                )
        if self.address is not None and self.address in self.hub_addresses:
            raise mamori_error(
                "本機のアドレスと保守業者側のアドレスが同じです",
                "the box's address is one of the hub's addresses",
            )
        return self

    def host_prefix(self) -> str:
        """The box's tunnel address as an interface address: /32 (IPv4) or /128 (IPv6)."""
        assert self.address is not None
        ip = ipaddress.ip_address(self.address)
        return f"{ip}/{ip.max_prefixlen}"

    def hub_allowed_ips(self) -> tuple[str, ...]:
        """The hub's AllowedIPs: its own tunnel addresses only, never a network behind it."""
        out = []
        for h in self.hub_addresses:
            ip = ipaddress.ip_address(h)
            out.append(f"{ip}/{ip.max_prefixlen}")
        return tuple(out)


def link_ports(cfg: MamoriConfig) -> list[str]:
    """The box's own services the hub may open on the link address ("tcp/N"), a fixed list: the web UI's
    HTTPS port, maintenance SSH while `ssh.enabled`, and each metrics port listening on the link address."""
    if not cfg.mgmt.enabled or cfg.mgmt.address is None:
        return []
    ports = [f"tcp/{cfg.web.port}"]
    if cfg.ssh.enabled:
        ports.append("tcp/22")
    link = str(ipaddress.ip_address(cfg.mgmt.address))
    for ep in cfg.metrics.endpoints():
        if ep.address == link and f"tcp/{ep.port}" not in ports:
            ports.append(f"tcp/{ep.port}")
    return ports


def _clinic_networks(cfg: MamoriConfig) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    nets = []
    for iface in cfg.interfaces:
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp":
                nets.append((iface.name, ipaddress.ip_interface(addr).network))
    for addr in (cfg.vpn.address, cfg.vpn.address6):  # even while the VPN is off: it may be switched on
        if addr:
            nets.append(("vpn", ipaddress.ip_interface(addr).network))
    return nets


def link_issues(cfg: MamoriConfig) -> list[tuple[str, str, str]]:
    """(field path, ja, en) for what spans sections: overlapping networks, a clashing interface name, a
    firewall rule or VPN access naming the link."""
    issues: list[tuple[str, str, str]] = []
    m = cfg.mgmt
    for i, rule in enumerate(cfg.firewall.rules):
        for end in ("src", "dst"):
            if getattr(rule, end) in (LINK_ZONE, m.interface):
                issues.append((f"firewall.rules[{i}].{end}",
                               "保守業者の管理接続（mgmt-link）はルールで開けません。保守業者は本機の管理画面などにだけ"
                               "つながり、院内の機器へはつながりません",
                               "the management link (mgmt-link) can never be opened by a rule"))  # fmt: skip
    for i, user in enumerate(cfg.vpn.users):
        for j, acc in enumerate(user.access):
            if acc.dst in (LINK_ZONE, m.interface):
                issues.append((f"vpn.users[{i}].access[{j}].dst", "保守業者の管理接続は VPN の行き先にできません",
                               "the management link is never a VPN destination"))  # fmt: skip
    if m.interface in {i.name for i in cfg.interfaces} or m.interface == cfg.vpn.interface:
        issues.append(("mgmt.interface", f"インターフェース名「{m.interface}」は既に使われています",
                       f"the interface name '{m.interface}' is already used"))  # fmt: skip
    if m.network is not None:
        hub = ipaddress.ip_network(m.network)
        for name, net in _clinic_networks(cfg):
            if net.version == hub.version and net.overlaps(hub):
                issues.append(("mgmt.network",
                               f"保守業者のネットワーク {hub} が院内のネットワーク {net}（{name}）と重なっています。"
                               "保守業者に別のアドレスを依頼してください",
                               f"the hub network {hub} overlaps the clinic network {net} ({name})"))  # fmt: skip
    return issues
