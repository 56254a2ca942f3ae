"""The root of the config model: the one place where the clinic's desired state is described.

Field-level rules live on the models; rules that span sections (a rule naming an unknown host, two
interfaces in one subnet) live in `appliance.config.references`, so that every issue gets a field path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
)
from firewall.model import DhcpConfig, FirewallConfig
from ids.model import IdsConfig
from sshsvc.model import SshConfig
from timesvc.model import NtpConfig
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


class WebhookConfig(Strict):
    url: str = Field(pattern=r"^https?://", max_length=2000)


class LineConfig(Strict):
    to: str = Field(min_length=1, max_length=64)
    api_base: str = Field(default="https://api.line.me", pattern=r"^https?://")


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
    storage: StorageConfig = Field(default_factory=StorageConfig)

    def interfaces_in(self, zone: str) -> list[Interface]:
        return [i for i in self.interfaces if i.zone == zone]
