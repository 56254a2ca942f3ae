"""The `vpn:` section of the config. Keys and secrets are state, not config: they never appear here."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

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


ListenPort = Annotated[
    int, Field(ge=1, le=65535, description=LISTEN_PORT_HELP_JA), AfterValidator(_check_listen_port)
]


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
    users: list[VpnUser] = Field(default_factory=list)
