"""The root of the config model: the one place where the clinic's desired state is described.

Field-level rules live on the models; rules that span sections (a rule naming an unknown host, two
interfaces in one subnet) live in `appliance.config.references`, so that every issue gets a field path.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from appliance.backup.model import BackupConfig
from appliance.config.catalogue import Service
from appliance.config.types import (
    Duration,
    InterfaceAddress,
    InterfaceName,
    IPAddress,
    MacAddress,
    Name,
    Strict,
    ZoneName,
    mamori_error,
)
from firewall.model import DhcpConfig, FirewallConfig
from fleetapi.model import FleetConfig
from ids.model import IdsConfig
from metrics.model import MetricsConfig
from mgmt.model import MgmtConfig
from siem.model import SiemConfig
from sshsvc.model import SshConfig
from timesvc.model import NtpConfig
from update.model import UpdateConfig
from vpn.model import VpnConfig

CURRENT_SCHEMA_VERSION = 1


class Clinic(Strict):
    name: str = Field(min_length=1, max_length=64)
    timezone: Literal["Asia/Tokyo", "UTC"] = "Asia/Tokyo"


class Interface(Strict):
    """A network port (or a VLAN on one) and the zone it belongs to."""

    name: InterfaceName
    zone: ZoneName
    address: InterfaceAddress | Literal["dhcp"] | None = None
    address6: InterfaceAddress | None = None
    gateway: IPAddress | None = None
    parent: InterfaceName | None = None
    vlan: int | None = Field(default=None, ge=1, le=4094)


class Host(Strict):
    """A named device of the clinic (電子カルテ server, 受付PC, X線装置...)."""

    name: Name
    ip: IPAddress | None = None
    mac: MacAddress | None = None
    description: str = Field(default="", max_length=200)


class Group(Strict):
    name: Name
    members: list[Name] = Field(min_length=1)


class SmtpConfig(Strict):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str = ""
    sender: str = Field(min_length=3, max_length=254)
    recipients: list[str] = Field(min_length=1)


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


def _webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise mamori_error(
            "Webhook の URL は https:// で始めてください（通知の内容が暗号化されずに流れるのを防ぐため）",
            "the webhook URL must start with https://",
        )
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        host = None
    if not host or parts.username or parts.password:
        raise mamori_error(
            "URL の形式が正しくありません（例: https://hooks.example.jp/mamori）",
            "not a valid URL (e.g. https://hooks.example.jp/mamori)",
        )
    return url


class WebhookConfig(Strict):
    allow_private: bool = False  # the receiver is inside the clinic (or on the box): said explicitly
    url: Annotated[str, AfterValidator(_webhook_url)] = Field(max_length=2000)

    @field_validator("url")
    @classmethod
    def _public_unless_allowed(cls, url: str, info: ValidationInfo) -> str:
        host = urlsplit(url).hostname or ""
        try:
            inside = non_public(ipaddress.ip_address(host))
        except ValueError:
            inside = host.lower() == "localhost" or host.lower().endswith((".localhost", ".local"))
        if inside and not info.data.get("allow_private"):
            raise mamori_error(
                "Webhook の送り先が院内・この機器自身などのアドレスになっています。院内のサーバーに送る場合は"
                " allow_private: true を指定してください",
                "the webhook URL points to a private, loopback or link-local address;"
                " set allow_private: true if that is intended",
            )
        return url


LINE_API = "https://api.line.me"


def _line_api(value: str) -> str:
    if value.rstrip("/") != LINE_API:
        raise mamori_error(
            f"LINE の送り先は {LINE_API} だけです（変更できません。この行は消してかまいません）",
            f"LINE messages can only go to {LINE_API}",
        )
    return LINE_API


class LineConfig(Strict):
    to: str = Field(min_length=1, max_length=64)
    api_base: Annotated[str, AfterValidator(_line_api)] = (
        LINE_API  # kept for old configs: only the official host
    )


class SyslogConfig(Strict):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=514, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"


class NotificationsConfig(Strict):
    email: SmtpConfig | None = None
    webhook: WebhookConfig | None = None
    line: LineConfig | None = None
    syslog: SyslogConfig | None = None
    min_interval: Duration = "10m"
    daily_digest: bool = True
    retry_after: Duration = "30s"  # first retry of a failed send; doubles up to 15 minutes


class WebConfig(Strict):
    """Where the management web UI listens. Never on wan or guest, whatever is written here."""

    port: int = Field(default=443, ge=1, le=65535)
    zones: list[ZoneName] = Field(default_factory=lambda: ["lan", "mgmt"])
    idle_timeout_minutes: int = Field(default=15, ge=1, le=240)


class StorageConfig(Strict):
    """The state database's disk budget and how long each kind of record is kept (appliance.retention).
    Defaults fit a 16 GB card: 2 GB for the database leaves room for the system, backups and the
    snapshot a backup makes. The audit log and the records of changes, VPN sessions and backups are
    kept five years (1830 days)."""

    max_db_mb: int = Field(default=2048, ge=64, le=1_048_576)
    audit_days: int = Field(default=1830, ge=365, le=36500)
    records_days: int = Field(default=1830, ge=365, le=36500)
    drops_days: int = Field(default=90, ge=1, le=3650)
    peer_log_days: int = Field(default=400, ge=30, le=3650)


class MamoriConfig(Strict):
    schema_version: int = CURRENT_SCHEMA_VERSION
    clinic: Clinic
    interfaces: list[Interface] = Field(min_length=1)
    hosts: list[Host] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    firewall: FirewallConfig = Field(default_factory=FirewallConfig)
    dhcp: DhcpConfig = Field(default_factory=DhcpConfig)
    ids: IdsConfig = Field(default_factory=IdsConfig)
    vpn: VpnConfig = Field(default_factory=VpnConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    ntp: NtpConfig = Field(default_factory=NtpConfig)
    ssh: SshConfig = Field(default_factory=SshConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    mgmt: MgmtConfig = Field(default_factory=MgmtConfig)
    siem: SiemConfig = Field(default_factory=SiemConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    update: UpdateConfig = Field(default_factory=UpdateConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)

    def interfaces_in(self, zone: str) -> list[Interface]:
        return [i for i in self.interfaces if i.zone == zone]
