"""Fill a Snapshot from the box: the live config and every area's public API (query modules, records).

The report names no table of another area: it asks the area (every listed area is always built,
appliance.areas). A source with nothing to tell yet (no live config) becomes `None` in the snapshot, never a
guessed value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import shutil
import subprocess

from appliance import __version__
from appliance.audit import audit_log
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.config.references import zone_of_ip
from appliance.service import ConfigService
from appliance.subsystem import Context
from appliance.zones import ZONE_LABELS
from reports import answers as answers_mod
from reports.snapshot import (
    AuditState,
    BackupState,
    ClockInfo,
    HostRow,
    Snapshot,
    SoftwareRow,
    VpnUserRow,
    WebAccountRow,
)
from timesvc.status import ClockState
from vpn import queries as vpn_queries

log = logging.getLogger(__name__)

VERDICT_LABELS = {"accept": "許可", "outbound": "許可（危険なポートを除く）", "drop": "遮断"}


def live_config(ctx: Context) -> tuple[MamoriConfig | None, int | None]:
    rev = ConfigService(ctx, subsystems=()).current()
    if rev is None:
        return None, None
    return parse_config(rev.config_text).model, rev.id


def zone_of(cfg: MamoriConfig, ip: str) -> str:
    """The clinic zone an address is in (the config's own answer), "" when none or not an address."""
    try:
        return zone_of_ip(cfg, ip) or ""
    except ValueError:
        return ""


def hosts(cfg: MamoriConfig) -> list[HostRow]:
    rows = []
    for h in cfg.hosts:
        zone = zone_of(cfg, str(h.ip)) if h.ip else ""
        rows.append(
            HostRow(h.name, str(h.ip or ""), str(h.mac or ""), ZONE_LABELS.get(zone, zone), h.description)
        )
    return rows


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def discovered(ctx: Context, cfg: MamoriConfig) -> list[HostRow] | None:
    """Devices that took a DHCP lease from the box (dnsmasq's lease file: "expiry mac ip name clientid").

    The names come from the devices themselves (attacker-controlled): only checked fields are used, the
    name is cut to 64 characters, and malformed lines are counted and logged, never guessed at."""
    path = ctx.paths.state_dir / "dnsmasq.leases"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[:5000]
    except FileNotFoundError:
        return []
    rows, bad = [], 0
    for line in lines:
        parts = line.split()
        try:
            ip = str(ipaddress.ip_address(parts[2]))
            if not _MAC.match(parts[1].lower()):
                raise ValueError(parts[1])
        except (IndexError, ValueError):
            bad += 1
            continue
        name = parts[3][:64] if len(parts) > 3 and parts[3] != "*" else "（名前なし）"
        zone = zone_of(cfg, ip)
        rows.append(HostRow(name, ip, parts[1].lower(), ZONE_LABELS.get(zone, zone), "", "検出（DHCP）"))
    if bad:
        log.warning("reports: %d malformed line(s) in %s skipped", bad, path)
    return rows


def _access(cfg: MamoriConfig, dst: str, service: str | None) -> tuple[str, bool]:
    zones = {i.zone for i in cfg.interfaces} | set(ZONE_LABELS)
    broad = dst in zones
    label = ZONE_LABELS.get(dst, dst) + (" 全体" if broad else "")
    return f"{label} ({service or 'すべて'})", broad


def vpn_users(ctx: Context, cfg: MamoriConfig) -> list[VpnUserRow] | None:
    use = vpn_queries.user_use(ctx.db)
    none = vpn_queries.UserUse(0, None, False, None, None)
    rows = []
    for u in cfg.vpn.users:
        access = [_access(cfg, a.dst, a.service) for a in u.access]
        got = use.get(u.name, none)
        rows.append(VpnUserRow(
            name=u.name, role=u.role, display_name=u.display_name, access=tuple(a for a, _ in access),
            broad=tuple(a for a, b in access if b), enabled=u.enabled and not got.credentials_disabled,
            session_hours=u.session_hours, hours=f"{u.hours.start}-{u.hours.end}" if u.hours else "",
            devices=got.devices, mfa=True if got.has_credentials else None,
            credential_disabled=got.credentials_disabled, last_used=got.last_session, created=got.first_device,
        ))  # fmt: skip
    return rows


def web_accounts(ctx: Context) -> list[WebAccountRow] | None:
    from webui.accounts import AccountStore  # here: the CLI's `mamori report` need not load the web UI

    return [WebAccountRow(a.name, a.display_name, a.role, a.totp_enabled, a.created_at, a.last_login, a.disabled,
                          a.password_changed_at, a.expires_at) for a in AccountStore(ctx.db).all()]  # fmt: skip


def zone_policy(cfg: MamoriConfig) -> list[tuple[str, str, str]] | None:
    from firewall import policy

    zones = {i.zone for i in cfg.interfaces}
    rows = [(ZONE_LABELS.get(a, a), ZONE_LABELS.get(b, b), VERDICT_LABELS.get(v, v))
            for (a, b), v in policy.FORWARD_DEFAULT.items() if a in zones and b in zones]  # fmt: skip
    rows.append(("上記以外", "（すべて）", "遮断"))
    return rows


def _suricata_version() -> str | None:
    if not shutil.which("suricata"):
        return None
    try:
        out = subprocess.run(["suricata", "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("reports: suricata -V failed: %s", exc)
        return None
    match = re.search(r"version\s+(\S+)", out)
    return match.group(1) if match else None


def software(ctx: Context) -> list[SoftwareRow]:
    """The box's own software, and the third-party detection rules with the time they were installed."""
    rows = [SoftwareRow("Mamori", __version__, None)]
    version = _suricata_version()
    if version:
        rows.append(SoftwareRow("Suricata（侵入検知）", version, None))
    from ids import sources

    current = sources.current_source(ctx.paths)
    updated = current.stat().st_mtime if current is not None else None
    rows.append(SoftwareRow("検知ルール（ET Open）", "導入済み" if current else "未導入", updated))
    return rows


def backup_state(ctx: Context, cfg: MamoriConfig | None) -> BackupState | None:
    from appliance.backup import records

    st = records.backup_status(ctx.db)
    return BackupState(
        last_ok_backup=st.last_ok_backup.ts if st.last_ok_backup else None,
        last_backup_ok=st.last_backup.ok if st.last_backup else None,
        last_backup_ts=st.last_backup.ts if st.last_backup else None,
        last_backup_error=st.last_backup.error if st.last_backup else "",
        last_ok_test=st.last_ok_test.ts if st.last_ok_test else None,
        last_test_ok=st.last_test.ok if st.last_test else None,
        last_test_ts=st.last_test.ts if st.last_test else None,
        last_test_error=st.last_test.error if st.last_test else "",
        enabled=bool(cfg and cfg.backup.enabled),
    )


def audit_state(ctx: Context) -> AuditState:
    result = audit_log(ctx).verify()
    return AuditState(result.ok, result.checked, result.text("ja"))


def clock_info(ctx: Context, cfg: MamoriConfig | None, st: ClockState | None = None) -> ClockInfo | None:
    """The clock as chronyd reports it (`st`: as the daemon read it for the web UI, whose account may not ask
    chronyd); with NTP on in the config but no chronyd rendering, it is "not running"."""
    from timesvc import status

    st = st if st is not None else status.clock_state(ctx)
    if cfg is not None and cfg.ntp.enabled and not st.enabled:
        st = dataclasses.replace(st, enabled=True, running=False)
    return ClockInfo(
        st.enabled, st.running, st.synchronised, st.offset_s, st.stratum, st.upstream, st.summary_ja()
    )


def gather_snapshot(ctx: Context, now: float, clock: ClockState | None = None) -> Snapshot:
    """Everything the checklist judges; `clock`: chronyd's state if the caller has it (the web UI asks the
    daemon, timesvc.web_actions), else read here."""
    ctx.db.migrate()
    cfg, rev = live_config(ctx)
    from vpn import credentials as vpn_creds
    from webui import passwords as web

    return Snapshot(
        now=now, clinic=cfg.clinic.name if cfg else "", timezone=cfg.clinic.timezone if cfg else "Asia/Tokyo",
        config_revision=rev, hosts=hosts(cfg) if cfg else None, discovered=discovered(ctx, cfg) if cfg else None,
        vpn_users=vpn_users(ctx, cfg) if cfg else None, web_accounts=web_accounts(ctx),
        web_password_policy=(web.MIN_LENGTH, web.MIN_LENGTH_WITH_MFA, web.HISTORY),
        vpn_password_min=vpn_creds.MIN_PASSWORD,
        zone_policy=zone_policy(cfg) if cfg else None,
        allow_rules=[(r.src, r.dst, r.service or "", r.comment) for r in cfg.firewall.rules] if cfg else None,
        port_forwards=[(str(p.port), p.to_host, p.comment) for p in cfg.firewall.port_forwards] if cfg else None,
        web_zones=tuple(cfg.web.zones) if cfg else None, software=software(ctx),
        backup=backup_state(ctx, cfg), audit=audit_state(ctx), answers=answers_mod.load(ctx.db),
        clock=clock_info(ctx, cfg, clock), rules_max_age_days=cfg.ids.rules_max_age_days if cfg else 7,
    )  # fmt: skip
