"""The `siem:` section of the config: where the box's syslog goes, how it is verified, what is sent.

Off by default. When on, the collector's host and its CA certificate (PEM) are required: the box verifies the
collector's certificate (x509/name) and never sends to an unverified peer. The name checked in the
certificate is `permitted_peer` (default: the collector's host). A client certificate is optional; its
private key is never in the config (revisions and backups carry the config): it lives in the keys
directory (keys/siem-client.key, 0600), put there by the administrator.

`via` says which way the messages leave: `wan` (the default: the collector is on the internet) or `mgmt`
(through the vendor hub's management link: the collector must then be one of the hub's tunnel addresses,
the only addresses the link routes; checked across sections by `config_issues`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from appliance.config.types import HostName, Strict, mamori_error, points_inside

if TYPE_CHECKING:
    from appliance.config.model import MamoriConfig

DEFAULT_PORT = 6514  # RFC 5425
SEVERITIES: dict[str, int] = {"high": 1, "medium": 2, "low": 3}  # Suricata's 1..3 (ids.queries)
BOX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def _pem_certificates(value: str) -> str:
    """One or more PEM certificates that parse, nothing else (the text becomes a file rsyslog reads)."""
    if value == "":
        return value
    from cryptography import x509

    text = value.strip() + "\n"
    blocks = _PEM_CERT.findall(text)
    leftover = _PEM_CERT.sub("", text).strip()
    try:
        if not blocks or leftover:
            raise ValueError("not only PEM certificates")
        x509.load_pem_x509_certificates(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise mamori_error(
            "証明書は PEM 形式（-----BEGIN CERTIFICATE----- で始まる文字）で貼り付けてください",
            "paste the certificate in PEM form (-----BEGIN CERTIFICATE----- ...)",
        ) from None
    return text


def _box_id(value: str) -> str:
    if value and not BOX_ID.match(value):
        raise mamori_error(
            "機器の識別名は英数字と . _ - の64文字以内で入力してください（例: clinic-037）",
            "the box id is up to 64 letters, digits, '.', '_' or '-' (e.g. clinic-037)",
        )
    return value


PemCertificates = Annotated[str, AfterValidator(_pem_certificates)]
BoxId = Annotated[str, AfterValidator(_box_id)]


class SiemConfig(Strict):
    """`enabled: false` (the default): no rsyslogd, nothing spooled, nothing sent."""

    enabled: bool = False
    collector: HostName = ""
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    collector_ca: PemCertificates = Field(default="", max_length=64_000)
    permitted_peer: HostName = ""  # the name in the collector's certificate; default: `collector`
    client_cert: PemCertificates = Field(default="", max_length=64_000)
    via: Literal["wan", "mgmt"] = "wan"
    min_alert_severity: Literal["high", "medium", "low"] = "high"
    queue_mb: int = Field(default=256, ge=16, le=8192)
    box_id: BoxId = ""  # how the collector tells boxes apart; default: made once on the box (state)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SiemConfig:
        if self.enabled:
            missing = [name for name in ("collector", "collector_ca") if not getattr(self, name)]
            if missing:
                raise mamori_error(
                    "SIEM へのログ送信を有効にするには、" + "、".join(missing) + " の設定が必要です",
                    "sending logs to a SIEM needs " + ", ".join(missing),
                )
        return self

    @property
    def peer_name(self) -> str:
        return self.permitted_peer or self.collector

    @property
    def alert_severity_max(self) -> int:
        """Alerts with Suricata severity <= this number are sent (1 = high only)."""
        return SEVERITIES[self.min_alert_severity]


def config_issues(cfg: MamoriConfig) -> list[tuple[str, str, str]]:
    """(field path, ja, en) for what spans sections (siem.area): the way out must exist and lead to the
    collector."""
    s = cfg.siem
    if not s.enabled:
        return []
    issues: list[tuple[str, str, str]] = []
    if s.via == "mgmt":
        hubs = {str(ipaddress.ip_address(h)) for h in cfg.mgmt.hub_addresses}
        if not cfg.mgmt.enabled:
            issues.append(("siem.via", "管理接続（mgmt）が無効なので、管理接続経由では送れません",
                           "siem.via is mgmt but the management link is off"))  # fmt: skip
        elif s.collector not in hubs:
            issues.append(("siem.collector",
                           "管理接続経由で送る場合、送り先は保守業者側のアドレス（" + "、".join(sorted(hubs))
                           + "）のどれかにしてください",
                           "through the management link the collector must be one of the hub's addresses: "
                           + ", ".join(sorted(hubs))))  # fmt: skip
    else:
        if points_inside(s.collector):  # a name is resolved when sending
            issues.append(("siem.collector",
                           "WAN 経由の送り先に院内・この機器自身などのアドレスは指定できません",
                           "through wan the collector must be a public address"))  # fmt: skip
    return issues
