"""The root of the config model: the one place where the clinic's desired state is described.

Field-level rules live on the models; rules that span sections (a rule naming an unknown host, two
interfaces in one subnet) live in `appliance.config.references`, so that every issue gets a field path.
The sections of the areas (firewall:, vpn:, ...) are their own models, named in their `area.py` and put
together here in the order of `appliance.areas`; this module holds the ground floor's sections.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, create_model, field_validator

from appliance import areas
from appliance.area import load
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
    points_inside,
)

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
    # wan only: take the IPv6 address and default route from the router's advertisements (SLAAC), as FLET'S
    # IPoE lines hand them out. The box forwards, so the kernel ignores advertisements unless told (accept_ra=2).
    # The prefix may change: doctors use a name that follows it (vpn.ddns).
    ipv6_auto: bool = False
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
        if points_inside(urlsplit(url).hostname or "") and not info.data.get("allow_private"):
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


class GroundSections(Strict):
    """The ground floor's sections that open the file: the clinic, its ports, devices and services."""

    schema_version: int = CURRENT_SCHEMA_VERSION
    clinic: Clinic
    interfaces: list[Interface] = Field(min_length=1)
    hosts: list[Host] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)

    def interfaces_in(self, zone: str) -> list[Interface]:
        return [i for i in self.interfaces if i.zone == zone]


def _sections() -> dict[str, Any]:
    """Each area's sections (appliance.areas, in its order), then the ground floor's closing ones."""
    fields: dict[str, Any] = {}
    for area in areas.AREAS:
        for section, ref in area.config:
            model = load(ref)
            fields[section] = (model, Field(default_factory=model))
    for section, model in (
        ("notifications", NotificationsConfig),
        ("web", WebConfig),
        ("storage", StorageConfig),
    ):
        fields[section] = (model, Field(default_factory=model))
    return fields


MamoriConfig = create_model(
    "MamoriConfig",
    __base__=GroundSections,
    __module__=__name__,
    __doc__="The whole config file: the ground floor's sections and every area's (appliance.area.Area.config).",
    **_sections(),
)
