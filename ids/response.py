"""Automatic response to alerts: a pure policy (`decide_block`) and its executor (`AutoResponder`).

Policy (ids.auto_block in the config): block the *source* of an alert when it is on the internet and the
alert's severity is at or above min_severity (1 = high). Never: an allowlisted address, the clinic's own
networks, the box itself, the WAN neighbourhood (gateway, modem), the DNS upstreams — an IDS false
positive must not cut the clinic off. Optionally quarantine an internal host on a high-severity
malware/C2 alert. The firewall's own guard (firewall.sets) refuses the same addresses again.
Each block is recorded in ids_blocks with its incident, and can be undone with `unblock`.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

from appliance.audit import AuditLog
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.errors import MamoriError
from appliance.subsystem import Context
from ids.alerts import Alert
from ids.classtypes import classtype_of
from ids.eve_reader import add_counters
from ids.ingest import StoredAlert

log = logging.getLogger(__name__)

C2_CLASSTYPES = frozenset({"command-and-control", "domain-c2", "trojan-activity"})


@dataclass(frozen=True)
class Decision:
    action: str  # none / block / quarantine
    ip: str | None = None
    timeout_s: int = 0
    why: str = ""  # English, for logs and tests; the Japanese text comes from the incident's explanation


def _wan_neighbourhood(cfg: MamoriConfig) -> list:
    nets = []
    for iface in cfg.interfaces_in("wan"):
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp":
                nets.append(ipaddress.ip_interface(addr).network)
        if iface.gateway:
            nets.append(ipaddress.ip_network(iface.gateway))
    return nets


def protected(cfg: MamoriConfig, ip: str) -> str | None:
    """Why `ip` must never be blocked automatically, or None."""
    addr = ipaddress.ip_address(ip)
    if addr.is_loopback or addr.is_multicast or addr.is_unspecified or addr.is_link_local or addr.is_reserved:
        return "special-purpose address"
    for net in cfg.firewall.allowlist:
        if addr in ipaddress.ip_network(net):
            return f"allowlisted ({net})"
    if any(addr in n for n in _wan_neighbourhood(cfg)):
        return "the box's WAN network or gateway"
    if ip in {str(ipaddress.ip_address(u)) for u in cfg.dhcp.dns_upstreams}:
        return "a DNS upstream"
    return None


def decide_block(alert: Alert, cfg: MamoriConfig) -> Decision:
    """Pure: what to do about one alert under the config's auto_block policy."""
    policy = cfg.ids.auto_block
    if not policy.enabled:
        return Decision("none", why="auto_block disabled")
    if alert.severity > policy.min_severity:
        return Decision("none", why=f"severity {alert.severity} below threshold {policy.min_severity}")
    timeout = parse_duration(policy.duration)
    if alert.src.external:
        why = protected(cfg, alert.src.ip)
        if why:
            return Decision("none", alert.src.ip, why=f"source is {why}")
        return Decision("block", alert.src.ip, timeout, why=f"external source, sid {alert.sid}")
    if (
        policy.quarantine_internal_on_c2
        and alert.severity == 1
        and classtype_of(alert.category) in C2_CLASSTYPES
        and alert.src.zone in ("lan", "guest", "devices")
    ):
        return Decision("quarantine", alert.src.ip, timeout, why=f"internal host, C2/malware sid {alert.sid}")
    return Decision("none", why="source is not external")


class AutoResponder:
    """Responder for AlertIngest: executes decisions through firewall.sets, once per address per window."""

    def __init__(self, ctx: Context, cfg: MamoriConfig, sets=None) -> None:
        if sets is None:
            from firewall.sets import FirewallSets  # the firewall area; imported late so ids loads without it

            sets = FirewallSets(ctx, cfg)
        self.ctx, self.cfg, self.sets = ctx, cfg, sets
        self._done: dict[str, float] = {}  # ip -> monotonic time until which it is known blocked

    def __call__(self, stored: list[StoredAlert]) -> None:
        now = time.monotonic()
        todo: dict[str, tuple[Decision, StoredAlert]] = {}
        for item in stored:
            decision = decide_block(item.alert, self.cfg)
            if decision.action == "none" or decision.ip is None or self._done.get(decision.ip, 0) > now:
                continue
            todo.setdefault(decision.ip, (decision, item))
        blocks = [(d, i) for d, i in todo.values() if d.action == "block"]
        if blocks:
            self._block(blocks)
        for decision, item in todo.values():
            if decision.action == "quarantine":
                self._execute(decision, item)
        for decision, _ in todo.values():
            self._done[decision.ip] = now + min(decision.timeout_s, 300)
        if len(self._done) > 10_000:
            self._done = {ip: t for ip, t in self._done.items() if t > now}

    @staticmethod
    def _reason(item: StoredAlert) -> str:
        return f"IDS incident {item.incident_id}: sid {item.alert.sid} {item.alert.signature}"[:500]

    def _block(self, blocks: list[tuple[Decision, StoredAlert]]) -> None:
        """All new addresses of one ingest batch in one firewall transaction (when the firewall offers it)."""
        if not hasattr(self.sets, "block_many"):
            for decision, item in blocks:
                self._execute(decision, item)
            return
        try:
            done, refused = self.sets.block_many(
                [(d.ip, d.timeout_s, self._reason(i)) for d, i in blocks], "ids"
            )
        except MamoriError as exc:
            log.error("auto-block of %d addresses failed: %s", len(blocks), exc.text("en"))
            done, refused = [], [(d.ip, exc) for d, _ in blocks]
        for ip, exc in refused:
            log.warning("auto-block of %s refused: %s", ip, exc.text("en"))
        ok = set(done)
        self._record([(d, i) for d, i in blocks if d.ip in ok], refused=len(refused))

    def _record(self, done: list[tuple[Decision, StoredAlert]], refused: int = 0) -> None:
        with self.ctx.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO ids_blocks(ts, ip, timeout_s, reason, source, incident_id) VALUES (?, ?, ?, ?, ?, ?)",
                [(time.time(), d.ip, d.timeout_s, f"{d.action}: {self._reason(i)}", "ids", i.incident_id)
                 for d, i in done],
            )  # fmt: skip
            counters: dict[str, int] = {"auto_block_refused": refused}
            for d, _ in done:
                counters[f"auto_{d.action}"] = counters.get(f"auto_{d.action}", 0) + 1
            add_counters(conn, counters)
        for d, i in done:
            log.info("auto-%s %s for %d s (incident %d)", d.action, d.ip, d.timeout_s, i.incident_id)

    def _execute(self, decision: Decision, item: StoredAlert) -> None:
        try:
            if decision.action == "block":
                self.sets.block(decision.ip, decision.timeout_s, self._reason(item), "ids")
            else:
                self.sets.quarantine(decision.ip, decision.timeout_s, self._reason(item), "ids")
        except MamoriError as exc:
            log.warning("auto-%s of %s refused: %s", decision.action, decision.ip, exc.text("en"))
            self._record([], refused=1)
            return
        self._record([(decision, item)])


def manual_block(ctx: Context, cfg: MamoriConfig, ip: str, actor: str, timeout_s: int | None,
                 incident_id: int | None = None, source: str = "cli", sets=None) -> str:  # fmt: skip
    """A person blocks an address (optionally for an incident); audited."""
    if sets is None:
        from firewall.sets import FirewallSets

        sets = FirewallSets(ctx, cfg)
    reason = f"manual by {actor}" + (f" (incident {incident_id})" if incident_id else "")
    addr = sets.block(ip, timeout_s, reason, source)
    with ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO ids_blocks(ts, ip, timeout_s, reason, source, incident_id) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), addr, timeout_s or 0, reason, source, incident_id),
        )
        AuditLog(ctx.db).record(actor, "ids.block", {"ip": addr, "timeout_s": timeout_s, "incident": incident_id},
                                source=source, conn=conn)  # fmt: skip
    return addr


def unblock(ctx: Context, cfg: MamoriConfig, ip: str, actor: str, source: str = "cli", sets=None) -> bool:
    """Undo a block (automatic or manual); audited. Returns whether it was in the firewall set."""
    if sets is None:
        from firewall.sets import FirewallSets

        sets = FirewallSets(ctx, cfg)
    present = sets.unblock(ip, source=source)
    with ctx.db.transaction() as conn:
        conn.execute(
            "UPDATE ids_blocks SET undone_at = ? WHERE ip = ? AND undone_at IS NULL", (time.time(), ip)
        )
        AuditLog(ctx.db).record(
            actor, "ids.unblock", {"ip": ip, "was_present": present}, source=source, conn=conn
        )
    return present
