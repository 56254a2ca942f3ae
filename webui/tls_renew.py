"""Keeping the web UI's certificate usable for the years a clinic keeps the box.

- `wanted_names`: pure — every name a person types to reach the web UI (the addresses of the zones in
  `web.zones`, the VPN portal address, the host name, mamori.local, 127.0.0.1).
- `decide`: pure — whether the box's own certificate must be renewed now, and why: none yet, unreadable,
  `RENEW_DAYS` or fewer days left, or the names differ from the wanted ones (a new LAN address).
- `renew` / `renew_if_due`: write the new certificate, audit `tls.renewed` (reason, old and new SHA-256),
  and remember the renewal for the dashboard notice. The running server picks it up by itself
  (`webui.tls.CertReloader`).
- `CertificateWorker`: the daemon's check, at start (so at every config change) and then hourly.

A certificate the clinic uploaded is never replaced here: it is only warned about from `WARN_DAYS` before
it ends (`warnings`, for the dashboard and `mamori tls status`). Not in scope: ACME / public CAs (the box
is not reachable from the internet by name).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.audit import audit_log
from appliance.clock import Clock, show, wall
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from appliance.webserver import web_addresses
from webui.tls import DEFAULT_DNS, DEFAULT_IPS, CertInfo, make_self_signed, read_certificate

log = logging.getLogger(__name__)

RENEW_DAYS = 60  # the box's own certificate is renewed with this many days left (it is made for 397)
WARN_DAYS = 30  # an uploaded one is warned about from this many days before it ends
NOTICE_DAYS = 14  # the dashboard tells about a renewal this long
POLL_SECONDS = 3600.0
RENEWAL_KEY = "tls.last_renewal"
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class CertNames:
    dns: tuple[str, ...]
    ips: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.dns + self.ips


def wanted_names(cfg: MamoriConfig | None, hostname: str = "") -> CertNames:
    """The names the certificate must carry for this config. Without a config (a new box): the defaults."""
    dns = set(DEFAULT_DNS)
    host = hostname.strip().lower().rstrip(".")
    if host and host != "localhost" and _DNS_NAME.match(host):
        dns.add(host)
    ips = {ipaddress.ip_address(ip) for ip in DEFAULT_IPS}
    if cfg is not None:
        ips.update(web_addresses(cfg))
        if cfg.vpn.enabled:
            ips.add(ipaddress.ip_interface(cfg.vpn.address).ip)
    ordered = sorted(ips, key=lambda ip: (ip.version, int(ip)))
    return CertNames(tuple(sorted(dns)), tuple(str(ip) for ip in ordered))


def names_match(info: CertInfo, wanted: CertNames) -> bool:
    return set(info.dns) == set(wanted.dns) and set(info.ips) == set(wanted.ips)


def missing_names(info: CertInfo, wanted: CertNames) -> tuple[str, ...]:
    present = set(info.names)
    return tuple(n for n in wanted.all if n not in present)


def decide(info: CertInfo | None, wanted: CertNames, now: float, readable: bool = True) -> str | None:
    """The reason to renew the box's own certificate now, or None. Never a reason for an uploaded one."""
    if info is None:
        return "missing" if readable else "unreadable"
    if info.uploaded:
        return None
    if info.days_left(now) <= RENEW_DAYS:
        return "expiring"
    if info.not_before > now:  # made while the clock was ahead: browsers refuse it until then
        return "not_yet_valid"
    if not names_match(info, wanted):
        return "names"
    return None


@dataclass(frozen=True)
class Renewal:
    reason: str
    old_fingerprint: str
    new: CertInfo


def renew(
    ctx: Context, wanted: CertNames, reason: str, actor: str, source: str, now: float | None = None
) -> Renewal:
    """Replace the certificate with a new self-signed one for `wanted`, audited and remembered."""
    now = wall() if now is None else now
    old = read_certificate(ctx.paths.keys_dir)
    new = make_self_signed(ctx.paths.keys_dir, wanted.dns, wanted.ips, now=now)
    ctx.db.migrate()
    detail = {"reason": reason, "old_fingerprint": old.fingerprint if old else "", "fingerprint": new.fingerprint,
              "names": list(new.names), "not_after": int(new.not_after)}  # fmt: skip
    with ctx.db.transaction() as conn:
        audit_log(ctx).record(actor, "tls.renewed", detail, source=source, conn=conn)
        ctx.db.set_kv(
            RENEWAL_KEY, json.dumps({"at": now, "reason": reason, "fingerprint": new.fingerprint}), conn
        )
    log.info("web certificate renewed (%s): %s", reason, new.fingerprint)
    return Renewal(reason, old.fingerprint if old else "", new)


def renew_if_due(
    ctx: Context, cfg: MamoriConfig | None, hostname: str, now: float, actor: str = "system",
    source: str = "daemon",
) -> Renewal | None:  # fmt: skip
    wanted = wanted_names(cfg, hostname)
    info = read_certificate(ctx.paths.keys_dir)
    readable = info is not None or not (ctx.paths.keys_dir / "web.crt").exists()
    reason = decide(info, wanted, now, readable)
    return renew(ctx, wanted, reason, actor, source, now) if reason else None


@dataclass(frozen=True)
class Notice:
    """A line for the dashboard: `level` is "info" (renewed) or "warn" (an uploaded one ending)."""

    level: str
    text: str


def renewal_notice(ctx: Context, info: CertInfo | None, now: float) -> Notice | None:
    """The "certificate renewed, compare the fingerprint" notice, for NOTICE_DAYS after a renewal, as long
    as the renewed certificate is still the one in use."""
    raw = ctx.db.get_kv(RENEWAL_KEY)
    if not raw or info is None:
        return None
    last = json.loads(raw)
    if last.get("fingerprint") != info.fingerprint or not 0 <= now - float(last["at"]) < NOTICE_DAYS * 86400:
        return None
    return Notice(
        "info",
        "画面の証明書を新しくしました。ブラウザーに警告が出たら、指紋（SHA-256）が "
        f"{info.fingerprint} と同じか確かめてください。",
    )


def expiry_warning(info: CertInfo | None, now: float, tz: str | None = None) -> Notice | None:
    """An uploaded certificate that ends within WARN_DAYS (or has ended): the clinic must get a new one."""
    if info is None or not info.uploaded:
        return None
    days = info.days_left(now)
    until = show(info.not_after, tz, "%Y/%m/%d")
    if days <= 0:
        text = f"医院で入れた画面の証明書は {until} に期限が切れています。保守業者に新しい証明書を依頼してください。"
        return Notice("warn", text)
    if days <= WARN_DAYS:
        text = (f"医院で入れた画面の証明書の期限は {until} です（あと {int(days)} 日）。"
                "保守業者に新しい証明書を依頼してください。")  # fmt: skip
        return Notice("warn", text)
    return None


class CertificateWorker:
    """A daemon Worker: renews the box's own certificate when `decide` says so. Runs once at start — the
    daemon restarts area workers with every new revision, so a changed LAN address is seen at once."""

    name = "tls.renew"

    def __init__(
        self,
        ctx: Context,
        cfg: MamoriConfig | None,
        hostname: Callable[[], str] = socket.gethostname,
        clock: Clock = wall,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.ctx, self.cfg, self.hostname, self.clock, self.poll = ctx, cfg, hostname, clock, poll

    def tick(self) -> Renewal | None:
        try:
            return renew_if_due(self.ctx, self.cfg, self.hostname(), self.clock())
        except OSError as exc:  # a full or read-only disk: said in the log, tried again at the next poll
            log.error("could not renew the web certificate: %s", exc)
            return None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(self.poll)


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[CertificateWorker]:
    return [CertificateWorker(ctx, cfg)]
