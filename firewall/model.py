"""The `firewall:` and `dhcp:` sections of the config.

Scope: what the clinic declares (custom allow rules, schedules, blocked outbound ports, port forwards,
allowlist, DHCP ranges). The default zone-to-zone policy itself is not configurable here on purpose: it
is the product's secure baseline (see docs/firewall.md, "Default policy"), and rules only open what is named.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from appliance.config.types import (
    Duration,
    IPAddress,
    Name,
    Network,
    PortSpec,
    Strict,
    TimeOfDay,
    ZoneName,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# Ports that ransomware and worms use to spread or to be controlled; blocked from lan to the internet.
DEFAULT_BLOCKED_OUTBOUND: tuple[str, ...] = (
    "tcp/135", "tcp/137-139", "udp/137-138", "tcp/445", "tcp/3389", "udp/3389", "tcp/23",
    "tcp/5900-5901", "tcp/1433", "tcp/3306", "tcp/5985-5986",
)  # fmt: skip


class Schedule(Strict):
    """Opening hours: the days and the time span during which a zone or rule is active (box-local time)."""

    name: Name
    days: list[Weekday] = Field(min_length=1)
    start: TimeOfDay
    end: TimeOfDay


class Rule(Strict):
    """One allow rule. `src`/`dst` name a zone, a host or a group; `service` names a catalogue service."""

    src: Name
    dst: Name
    service: Name | None = None
    schedule: Name | None = None
    comment: str = Field(default="", max_length=200)


class PortForward(Strict):
    """An inbound port on wan forwarded to an internal host. Off unless written here; validation warns."""

    port: PortSpec
    to_host: Name
    to_port: int | None = Field(default=None, ge=1, le=65535)
    comment: str = Field(default="", max_length=200)


class FirewallConfig(Strict):
    rules: list[Rule] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    zone_schedules: dict[ZoneName, Name] = Field(default_factory=dict)
    blocked_outbound: list[PortSpec] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_OUTBOUND))
    port_forwards: list[PortForward] = Field(default_factory=list)
    allowlist: list[Network] = Field(default_factory=list)
    block_timeout: Duration = "24h"
    log_drops: bool = True


class DhcpRange(Strict):
    zone: ZoneName
    start: IPAddress
    end: IPAddress
    lease: Duration = "12h"


class DhcpConfig(Strict):
    enabled: bool = True
    ranges: list[DhcpRange] = Field(default_factory=list)
    dns_upstreams: list[IPAddress] = Field(default_factory=list)
    domain: str = Field(default="clinic.lan", pattern=r"^[a-z0-9]([a-z0-9\-.]{0,60}[a-z0-9])?$")
