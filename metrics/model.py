"""The `metrics:` section of the config: where the box answers Prometheus' scrapes, and for whom.

`listen` is a list of `address:port` (IPv6 as `[address]:port`); empty (the default) means no listener and
no open port. Each address must be one of the box's own static addresses on an internal zone meant for
people who look after it (lan, mgmt, vpn): never wan or guest, nor devices (the medical devices' network).
That check spans sections (the interfaces), so it lives in `listen_issues`, called from
`appliance.config.references`. `zones` are the zones whose hosts may scrape (default mgmt and lan); the
firewall opens each listen port only on its address and only from those zones (firewall/render.py).
`token: true` asks every scrape for `Authorization: Bearer <token>` (the token file is made on first use
under the keys directory; `mamori metrics --token` shows it). Plain HTTP: the future management link is a
WireGuard tunnel, which already encrypts and authenticates the hub.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field

from appliance.config.types import Strict, mamori_error

if TYPE_CHECKING:
    from appliance.config.model import MamoriConfig

# mgmt-link: the vendor hub's tunnel (mgmt/), where the firewall opens the port on the link address only.
LISTEN_ZONES: tuple[str, ...] = ("lan", "mgmt", "vpn", "mgmt-link")
DEFAULT_PORT = 9469
ScrapeZone = Literal["lan", "mgmt", "vpn"]


@dataclass(frozen=True)
class Listen:
    address: str  # the IP, without brackets
    port: int

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


def parse_listen(value: str) -> Listen:
    """'192.168.10.1:9469' or '[fd00::1]:9469' -> Listen; raises the bilingual validation error."""
    bad = mamori_error(
        f"「{value}」は「アドレス:ポート」の形式ではありません（例: 192.168.40.1:{DEFAULT_PORT}、"
        f"[fd00::1]:{DEFAULT_PORT}）",
        f"'{value}' is not address:port (e.g. 192.168.40.1:{DEFAULT_PORT} or [fd00::1]:{DEFAULT_PORT})",
    )
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise bad  # an IPv6 address must be bracketed, or the port is ambiguous
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise bad from None
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast:
        raise mamori_error(
            f"「{host}」では待ち受けられません。本機の院内側のアドレスを1つずつ指定してください",
            f"'{host}' cannot be used: give one of the box's own internal addresses",
        )
    return Listen(str(ip), int(port))


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


ListenAddress = Annotated[str, AfterValidator(_check_listen)]


class MetricsConfig(Strict):
    listen: list[ListenAddress] = Field(default_factory=list, max_length=8)
    zones: list[ScrapeZone] = Field(default_factory=lambda: ["mgmt", "lan"], max_length=3)
    token: bool = False

    def endpoints(self) -> list[Listen]:
        return [parse_listen(v) for v in self.listen]


def box_addresses(cfg: MamoriConfig) -> dict[str, str]:
    """The box's own static addresses -> the zone of their interface (the VPN's when the VPN is on)."""
    out: dict[str, str] = {}
    for iface in cfg.interfaces:
        for address in (iface.address, iface.address6):
            if address and address != "dhcp":
                out.setdefault(str(ipaddress.ip_interface(address).ip), iface.zone)
    if cfg.vpn.enabled:
        for address in (cfg.vpn.address, cfg.vpn.address6):
            if address:
                out.setdefault(str(ipaddress.ip_interface(address).ip), "vpn")
    if cfg.mgmt.enabled and cfg.mgmt.address:
        out.setdefault(str(ipaddress.ip_address(cfg.mgmt.address)), "mgmt-link")
    return out


def listen_issues(cfg: MamoriConfig) -> list[tuple[str, str, str]]:
    """(field path, ja, en) for each listen address that is not the box's own on lan, mgmt or vpn."""
    issues: list[tuple[str, str, str]] = []
    mine = box_addresses(cfg)
    seen: set[tuple[str, int]] = set()
    for i, ep in enumerate(cfg.metrics.endpoints()):
        path = f"metrics.listen[{i}]"
        zone = mine.get(ep.address)
        if (ep.address, ep.port) in seen:
            issues.append(
                (path, "同じ待ち受け先が2回書かれています", "the same address:port is listed twice")
            )
        seen.add((ep.address, ep.port))
        if zone is None:
            issues.append((path, f"「{ep.address}」は本機のどのポートの固定アドレスでもありません",
                           f"'{ep.address}' is not a static address of one of the box's interfaces"))  # fmt: skip
        elif zone not in LISTEN_ZONES:
            issues.append((path, f"監視用の情報（メトリクス）は {zone} ゾーンのアドレスでは公開できません"
                           "（院内 lan・管理用 mgmt・VPN のアドレスだけです）",
                           f"metrics are never served on a {zone} address (only lan, mgmt or vpn)"))  # fmt: skip
    return issues
