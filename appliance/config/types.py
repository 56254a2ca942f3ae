"""Small constrained types shared by every section of the config model.

Custom validation errors are raised as `PydanticCustomError("mamori", ...)` with both languages in the
context, so that `appliance.config.messages` can show them in Japanese or English.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

ZoneName = Literal["wan", "lan", "guest", "devices", "vpn", "mgmt"]
INTERNAL_ZONES: tuple[str, ...] = ("lan", "guest", "devices", "vpn", "mgmt")
ALL_ZONES: tuple[str, ...] = ("wan", *INTERNAL_ZONES)


def mamori_error(ja: str, en: str) -> PydanticCustomError:
    """A validation error that carries its message in both languages."""
    return PydanticCustomError("mamori", "{en}", {"ja": ja, "en": en})


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


_NAME_BAD = re.compile(r"[\x00-\x1f\x7f\"'`\\<>]")


def _check_name(value: str) -> str:
    if not value or len(value) > 32:
        raise mamori_error("名前は1〜32文字で入力してください", "a name must be 1 to 32 characters long")
    if _NAME_BAD.search(value):
        raise mamori_error(
            "名前に使えない文字（引用符、<>、\\、制御文字）が含まれています",
            "a name may not contain quotes, <, >, backslashes or control characters",
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]

_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,14}$")


def _check_ifname(value: str) -> str:
    if not _IFNAME.match(value):
        raise mamori_error(
            "インターフェース名は英数字・「.」「-」「_」で15文字以内です（例: eth0, lan0.20）",
            "an interface name is up to 15 letters, digits, '.', '-' or '_' (e.g. eth0, lan0.20)",
        )
    return value


InterfaceName = Annotated[str, AfterValidator(_check_ifname)]


def _check_interface_address(value: str) -> str:
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise mamori_error(
            f"「{value}」はアドレス/プレフィックス長の形式ではありません（例: 192.168.10.1/24）",
            f"'{value}' is not an address with prefix length (e.g. 192.168.10.1/24)",
        ) from None
    if "/" not in value:
        raise mamori_error(
            "プレフィックス長を付けてください（例: 192.168.10.1/24）",
            "add the prefix length (e.g. 192.168.10.1/24)",
        )
    if iface.ip == iface.network.network_address and iface.network.prefixlen < iface.max_prefixlen - 1:
        raise mamori_error(
            f"「{value}」はネットワークアドレスです。機器のアドレスを指定してください",
            f"'{value}' is a network address; give the box's own address",
        )
    return str(iface)


InterfaceAddress = Annotated[str, AfterValidator(_check_interface_address)]


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise mamori_error(
            f"「{value}」はIPアドレスではありません（例: 192.168.10.10）",
            f"'{value}' is not an IP address (e.g. 192.168.10.10)",
        ) from None


IPAddress = Annotated[str, AfterValidator(_check_ip)]


def _check_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise mamori_error(
            f"「{value}」はアドレスまたはネットワーク（例: 203.0.113.0/24）ではありません",
            f"'{value}' is not an address or network (e.g. 203.0.113.0/24)",
        ) from None


Network = Annotated[str, AfterValidator(_check_network)]

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _check_mac(value: str) -> str:
    mac = value.lower().replace("-", ":")
    if not _MAC.match(mac):
        raise mamori_error(
            f"「{value}」はMACアドレスではありません（例: 52:54:00:12:34:56）",
            f"'{value}' is not a MAC address (e.g. 52:54:00:12:34:56)",
        )
    return mac


MacAddress = Annotated[str, AfterValidator(_check_mac)]

_PORTSPEC = re.compile(r"^(tcp|udp)/(\d{1,5})(?:-(\d{1,5}))?$")


def _check_portspec(value: str) -> str:
    m = _PORTSPEC.match(value.lower())
    bad = mamori_error(
        f"「{value}」はポートの形式ではありません（例: tcp/443, udp/53, tcp/8000-8010）",
        f"'{value}' is not a port (e.g. tcp/443, udp/53, tcp/8000-8010)",
    )
    if not m:
        raise bad
    low = int(m.group(2))
    high = int(m.group(3) or low)
    if not (1 <= low <= high <= 65535):
        raise bad
    return value.lower()


PortSpec = Annotated[str, AfterValidator(_check_portspec)]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise mamori_error(
            f"「{value}」は時刻の形式ではありません（例: 08:30）",
            f"'{value}' is not a time of day (e.g. 08:30)",
        )
    return value


TimeOfDay = Annotated[str, AfterValidator(_check_hhmm)]

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> int:
    """'30m' -> 1800. Durations in the config are written as a number and one unit: s, m, h or d."""
    m = _DURATION.match(value)
    if not m or int(m.group(1)) == 0:
        raise mamori_error(
            f"「{value}」は期間の形式ではありません（例: 30m, 8h, 7d）",
            f"'{value}' is not a duration (e.g. 30m, 8h, 7d)",
        )
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$"
)


def _check_host(value: str) -> str:
    """A DNS name or an IP address, nothing else: it ends up in files other programs parse (client .conf)."""
    if value == "":
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not is_host_name(value):
        raise mamori_error(
            f"「{value}」はホスト名またはIPアドレスではありません（例: clinic.example.jp, 203.0.113.2）",
            f"'{value}' is not a host name or IP address (e.g. clinic.example.jp, 203.0.113.2)",
        )
    return value.lower()


HostName = Annotated[str, AfterValidator(_check_host)]


def is_host_name(value: str) -> bool:
    """A DNS name (letters, digits, hyphens; dot-separated labels of up to 63): the one rule for every field
    that names a host (HostName, mgmt.hub_endpoint)."""
    return bool(_HOSTNAME.match(value))


_INSIDE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
    "::/127", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))  # fmt: skip


def non_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address inside the clinic or the box (RFC 1918, loopback, link-local, CGNAT, ULA, multicast…):
    where a webhook must not point unless the clinic says so (a blind SSRF into the LAN otherwise).
    Documentation ranges (TEST-NET) count as outside: the lab uses them as its internet."""
    mapped = getattr(ip, "ipv4_mapped", None) or ip
    return any(mapped in net for net in _INSIDE if net.version == mapped.version)


def points_inside(host: str) -> bool:
    """Whether a host that something on the box will send to (a webhook, a SIEM collector through wan) is an
    address inside the clinic or the box (non_public) or a name that can only be local (localhost, .local).
    Other names are resolved when sending (appliance.notify.channels checks the answer again)."""
    try:
        return non_public(ipaddress.ip_address(host))
    except ValueError:
        name = host.lower()
        return name == "localhost" or name.endswith((".localhost", ".local"))


def _check_ipv4_pool(value: str) -> str:
    iface = ipaddress.ip_interface(value)
    if iface.version != 4 or not (16 <= iface.network.prefixlen <= 30):
        raise mamori_error(
            "VPN のアドレスは IPv4 で、/16〜/30 の範囲にしてください（例: 10.99.0.1/24）",
            "the VPN address must be IPv4 with a prefix from /16 to /30 (e.g. 10.99.0.1/24)",
        )
    return value


VpnPoolAddress = Annotated[InterfaceAddress, AfterValidator(_check_ipv4_pool)]
