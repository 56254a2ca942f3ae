"""The `ids:` section of the config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from appliance.config.types import Duration, InterfaceName, IPAddress, Strict, mamori_error


class Suppression(Strict):
    sid: int = Field(ge=1)
    track: Literal["by_src", "by_dst", "by_either"] | None = None
    ip: IPAddress | None = None


class Threshold(Strict):
    """Rate-limit one rule (Suricata threshold.config): e.g. at most one alert per source per hour."""

    sid: int = Field(ge=1)
    type: Literal["limit", "threshold", "both"] = "limit"
    track: Literal["by_src", "by_dst", "by_rule", "by_both"] = "by_src"
    count: int = Field(default=1, ge=1, le=1_000_000)
    seconds: int = Field(default=3600, ge=1, le=86400 * 7)


class AutoBlock(Strict):
    """Block external sources of alerts at or above a severity (1 = high, 3 = low)."""

    enabled: bool = True
    min_severity: Literal[1, 2, 3] = 2
    duration: Duration = "24h"
    quarantine_internal_on_c2: bool = False


class IdsConfig(Strict):
    enabled: bool = True
    profile: Literal["clinic", "full"] = "clinic"
    interfaces: list[InterfaceName] = Field(default_factory=list)
    enable_sids: list[int] = Field(default_factory=list)
    disable_sids: list[int] = Field(default_factory=list)
    disable_categories: list[str] = Field(default_factory=list)
    suppress: list[Suppression] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)
    auto_block: AutoBlock = Field(default_factory=AutoBlock)
    incident_window: Duration = "1h"
    retention_days: int = Field(default=180, ge=7, le=3650)
    # An open (未対応) incident with no new alert for this many days is closed by itself (解決済み, noted
    # 「自動で終了」, audited), then kept like any closed one: a clinic that never answers does not keep
    # every incident open for ever.
    incident_auto_close_days: int = Field(default=90, ge=7, le=3650)
    max_db_mb: int = Field(default=1024, ge=64)
    # EVE lines longer than this are kept aside (quarantined), not parsed: a guard against memory blow-up.
    eve_max_line_kb: int = Field(default=1024, ge=16, le=65536)
    # Flow and stats records are analysed and counted but not stored raw unless asked (SD card wear, size).
    store_flows: bool = False
    # Flow analysis ("beyond signatures"): distinct internal hosts one host may open RDP/SMB to in 5
    # minutes, and megabytes one clinic host may send to the internet in an hour, before an incident.
    lateral_hosts: int = Field(default=10, ge=3, le=1000)
    exfil_mb: int = Field(default=500, ge=10, le=100_000)
    # Third-party rules (ET Open) older than this many days are a warning on the dashboard and in
    # `mamori ids status`: new attacks need new rules (ids/freshness.py).
    rules_max_age_days: int = Field(default=7, ge=1, le=365)

    @model_validator(mode="after")
    def _closed_before_deleted(self) -> IdsConfig:
        """An open incident is closed after incident_auto_close_days and then kept retention_days like any
        closed one; a shorter retention would delete it in the same pass that closes it, before anyone saw
        that it had been closed."""
        if self.retention_days < self.incident_auto_close_days:
            raise mamori_error(
                f"IDS の記録の保存日数（retention_days: {self.retention_days}日）は、未対応の検知を自動で終了する"
                f"日数（incident_auto_close_days: {self.incident_auto_close_days}日）以上にしてください",
                f"ids.retention_days ({self.retention_days}) must be at least ids.incident_auto_close_days "
                f"({self.incident_auto_close_days}): an auto-closed incident would be deleted in the same pass",
            )
        return self
