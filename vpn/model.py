"""The `vpn:` section of the config. Keys and secrets are state, not config: they never appear here."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from appliance.config.types import (
    HostName,
    InterfaceAddress,
    InterfaceName,
    Name,
    Strict,
    TimeOfDay,
    VpnPoolAddress,
    mamori_error,
)

Role = Literal["doctor", "staff", "vendor"]

# The help of `vpn.listen_port` (docs/vpn-lines.md says the same for the clinic).
LISTEN_PORT_HELP_JA = (
    "VPN の待ち受けポート（UDP）。既定は 51820。MAP-E の回線（v6プラス、OCN バーチャルコネクトなど）では"
    "1つの IPv4 アドレスを共有し、ルーターで転送できるのは割り当てられたポート（例: 240 個）だけなので、"
    "その中の番号を選び、ルーターで同じ番号を本機へ転送してください"
)


def _check_listen_port(value: int) -> int:
    """A privileged port is never a WireGuard port on a home line; the message names the MAP-E case, where
    the clinic must pick a port from the router's usable set."""
    if value < 1024:
        raise mamori_error(
            f"VPN の待ち受けポート {value} は使えません（1024〜65535）。MAP-E（v6プラス、OCN バーチャルコネクト"
            "など）の回線では、ルーターが使えるポートの範囲（例: 240 個）の中から選んでください",
            f"VPN listen port {value} is not usable (1024-65535). On a MAP-E line (v6plus, OCN Virtual "
            "Connect) pick one from the router's usable port set (e.g. 240 ports)",
        )
    return value


def _check_relay_endpoint(value: str) -> str:
    """The hub's public address and this clinic's port on it, as the vendor gave it ('host:port')."""
    if value == "":
        return value
    from mgmt.model import split_endpoint

    host, port = split_endpoint(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_probe_key(value: str) -> str:
    from vpn.keys import is_valid_key

    if not is_valid_key(value):
        raise mamori_error(
            "到達確認用の公開鍵の形式が正しくありません（WireGuard の公開鍵は44文字で「=」で終わります）",
            "not a WireGuard public key (44 base64 characters ending in '=')",
        )
    return value


ProbeKey = Annotated[str, AfterValidator(_check_probe_key)]
# How new doctors' configs reach the box (vpn/lines.py): the router's IPv4 port forward, IPv6, or the relay
# through the vendor's hub; "auto" follows the last reachability check.
VpnPath = Literal["direct", "ipv6", "relay", "auto"]


class ProbeKeys(Strict):
    """Public keys of the outside prober (fleet/relay/probe on the vendor's hub). Each becomes a peer that may
    send nothing (no AllowedIPs): its handshake only proves that a packet got in, by IPv4, by IPv6, and over
    the management link (the control that says a probe round ran). See vpn/reach.py."""

    ipv4: ProbeKey
    ipv6: ProbeKey
    link: ProbeKey

    @model_validator(mode="after")
    def _distinct(self) -> ProbeKeys:
        if len({self.ipv4, self.ipv6, self.link}) != 3:
            raise mamori_error(
                "到達確認用の鍵は3つとも別の鍵にしてください", "the three probe keys must differ"
            )
        return self


ListenPort = Annotated[
    int, Field(ge=1, le=65535, description=LISTEN_PORT_HELP_JA), AfterValidator(_check_listen_port)
]


TsigAlgorithm = Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224"]


class DdnsConfig(Strict):
    """Where the box keeps `vpn.endpoint6` (a DNS name) pointing at its current WAN IPv6 address: an RFC 2136
    dynamic update signed with TSIG, to the vendor's hub (bind9, knot) or a provider the clinic names.
    The TSIG secret is state, not config: `<state>/keys/ddns_tsig` (`mamori vpn ddns set-secret`), so it
    never appears in the config, its history, the review page or the audit log (vpn/ddns.py)."""

    server: HostName = Field(min_length=1)  # the primary that accepts updates (name or address)
    port: int = Field(default=53, ge=1, le=65535)
    zone: HostName = Field(min_length=1)  # the zone the name is in (e.g. v6.example.jp)
    tsig_key_name: HostName = Field(min_length=1)
    tsig_algorithm: TsigAlgorithm = "hmac-sha256"
    ttl: int = Field(default=300, ge=30, le=86400)
    # The WAN interface whose global IPv6 address is published; empty: the first interface in zone wan.
    interface: InterfaceName | None = None


class Access(Strict):
    """One thing a VPN user may reach: a host, group or zone, optionally only one service."""

    dst: Name
    service: Name | None = None


class Hours(Strict):
    start: TimeOfDay
    end: TimeOfDay


class VpnUser(Strict):
    name: Name
    role: Role
    display_name: str = Field(default="", max_length=64)
    access: list[Access] = Field(default_factory=list)
    hours: Hours | None = None
    session_hours: int = Field(default=8, ge=1, le=24)
    enabled: bool = True


class VpnConfig(Strict):
    enabled: bool = False
    # The WireGuard interface. UAPI sockets (/var/run/wireguard) are global, so the lab gives each box its own.
    interface: InterfaceName = "mamori-wg"
    # MAP-E: the router forwards only its port set; the port flows into the interface, the firewall's wan
    # rule and every doctor's .conf (see LISTEN_PORT_HELP_JA).
    listen_port: ListenPort = 51820
    address: VpnPoolAddress = "10.99.0.1/24"
    address6: InterfaceAddress | None = "fd4d:616d:6f72::1/64"
    endpoint: HostName = ""
    # A name (or address) by which doctors reach the box over IPv6; the box keeps it pointing at its current
    # prefix (docs/vpn-lines.md). Used by path "ipv6" and by "auto" when only IPv6 gets in.
    endpoint6: HostName = ""
    path: VpnPath = "direct"
    # The vendor hub's public address and this clinic's port there ("hub.example.jp:40017"): doctors' packets
    # sent there are forwarded, still encrypted, through the management link (mgmt hub-relay-rules).
    relay_endpoint: Annotated[str, AfterValidator(_check_relay_endpoint)] = Field(default="", max_length=260)
    probe: ProbeKeys | None = None
    ddns: DdnsConfig | None = None  # keeps endpoint6 (a name) at the box's current IPv6 address
    users: list[VpnUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _path_has_its_endpoint(self) -> VpnConfig:
        need = {"relay": ("relay_endpoint", "保守業者のハブの中継先"), "ipv6": ("endpoint6", "IPv6 の接続先")}
        if self.path in need and not getattr(self, need[self.path][0]):
            name, ja = need[self.path]
            raise mamori_error(
                f"接続経路「{self.path}」には {name}（{ja}）が必要です",
                f"vpn.path {self.path} needs vpn.{name}",
            )
        return self

    @model_validator(mode="after")
    def _ddns_updates_endpoint6(self) -> VpnConfig:
        """The name the box updates is the one doctors' configs carry (`endpoint6`), inside `ddns.zone`."""
        if self.ddns is None:
            return self
        name, zone = self.endpoint6, self.ddns.zone
        if not name or _is_address(name):
            raise mamori_error(
                "IPv6 の名前の自動更新（vpn.ddns）には、vpn.endpoint6 に名前（例: clinic-17.v6.example.jp）が必要です",
                "vpn.ddns needs vpn.endpoint6 to be a DNS name (e.g. clinic-17.v6.example.jp)",
            )
        if name == zone or not name.endswith("." + zone):
            raise mamori_error(
                f"vpn.endpoint6 の名前 {name} がゾーン {zone} の中にありません（例: clinic-17.{zone}）",
                f"vpn.endpoint6 {name} is not inside the zone {zone} (e.g. clinic-17.{zone})",
            )
        return self


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
