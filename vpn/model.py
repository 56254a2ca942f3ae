"""The `vpn:` section of the config. Keys and secrets are state, not config: they never appear here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from appliance.config.types import (
    HostName,
    InterfaceAddress,
    InterfaceName,
    Name,
    Strict,
    TimeOfDay,
    VpnPoolAddress,
)

Role = Literal["doctor", "staff", "vendor"]


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
    listen_port: int = Field(default=51820, ge=1, le=65535)
    address: VpnPoolAddress = "10.99.0.1/24"
    address6: InterfaceAddress | None = "fd4d:616d:6f72::1/64"
    endpoint: HostName = ""
    users: list[VpnUser] = Field(default_factory=list)
