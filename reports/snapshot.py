"""What the checklist is judged from: a plain snapshot of the box, gathered once (reports.gather).

Every field that comes from another area's data is `None` when that area does not provide it (module or
table missing): the checklist and the report then say 「データがありません（機能未提供）」 instead of
guessing. An empty list means the source exists and has nothing in it — a different statement.
Non-goal: any I/O here; these are data only, so the checklist rules are unit-tested from literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNAVAILABLE = "データがありません（機能未提供）"


@dataclass(frozen=True)
class HostRow:
    """One device of the clinic as the box knows it (the config's hosts, or one the box saw on the network)."""

    name: str
    ip: str
    mac: str
    zone: str
    description: str
    source: str = "設定"  # 設定 (written in the config) or 検出 (seen on the network)


@dataclass(frozen=True)
class VpnUserRow:
    name: str
    role: str  # doctor / staff / vendor
    display_name: str
    access: tuple[str, ...]  # "電子カルテ (HTTPS)", "lan (すべて)"
    broad: tuple[str, ...]  # access entries that name a whole zone: wider than a single system
    enabled: bool
    session_hours: int
    hours: str  # "07:00-23:00" or ""
    devices: int | None  # active WireGuard devices, None if unknown
    mfa: bool | None  # True: portal credentials (password + TOTP) exist; None: not enrolled, cannot sign in
    credential_disabled: bool | None
    last_used: float | None  # start of the last portal session
    created: float | None  # first device registered: how long the account has existed


@dataclass(frozen=True)
class WebAccountRow:
    name: str
    display_name: str
    role: str  # admin / viewer / vendor
    mfa: bool
    created_at: float
    last_login: float | None
    disabled: bool
    password_changed_at: float
    expires_at: float | None


@dataclass(frozen=True)
class SoftwareRow:
    name: str
    version: str
    updated: float | None  # when this version / these rules were installed, if known


@dataclass(frozen=True)
class BackupState:
    """The parts of appliance.backup.records.BackupStatus the checklist needs."""

    last_ok_backup: float | None
    last_backup_ok: bool | None  # the newest run, success or not
    last_backup_error: str
    last_backup_ts: float | None
    last_ok_test: float | None
    last_test_ok: bool | None
    last_test_error: str
    last_test_ts: float | None
    enabled: bool  # scheduled backups on in the config


@dataclass(frozen=True)
class AuditState:
    ok: bool
    checked: int
    text: str


@dataclass(frozen=True)
class ClockInfo:
    """The box's clock (timesvc.status.ClockState): log times are evidence only if the clock was right."""

    enabled: bool  # NTP on in the config
    running: bool  # chronyd answered
    synchronised: bool
    offset_s: float | None  # > 0: the box's clock is ahead
    stratum: int | None
    upstream: str
    text: str  # the Japanese one-line summary


@dataclass(frozen=True)
class Answer:
    """The clinic's own answer to an item the box cannot judge."""

    answer: str  # はい / いいえ / "" (not answered yet)
    target_date: str  # YYYY-MM-DD, required when いいえ
    note: str
    answered_by: str
    answered_at: float


@dataclass(frozen=True)
class Snapshot:
    now: float
    clinic: str
    timezone: str
    config_revision: int | None
    hosts: list[HostRow] | None
    discovered: list[HostRow] | None
    vpn_users: list[VpnUserRow] | None
    web_accounts: list[WebAccountRow] | None
    web_password_policy: tuple[int, int, int] | None  # (min length, min length with MFA, history)
    vpn_password_min: int | None
    zone_policy: list[tuple[str, str, str]] | None  # (from zone, to zone, 許可/遮断/...)
    allow_rules: list[tuple[str, str, str, str]] | None  # (src, dst, service, comment)
    port_forwards: list[tuple[str, str, str]] | None  # (port, to host, comment)
    web_zones: tuple[str, ...] | None
    software: list[SoftwareRow]
    backup: BackupState | None
    audit: AuditState
    answers: dict[str, Answer] = field(default_factory=dict)
    unused_days: int = 90
    rules_max_age_days: int = 7  # ids.rules_max_age_days, the same limit as the dashboard
    clock: ClockInfo | None = None  # None: the time service is not built into this box
