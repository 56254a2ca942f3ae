"""Automatic response to alerts: a pure policy (`decide_block`) and its executor (`AutoResponder`).

Policy (ids.auto_block in the config): block the *source* of an alert when it is on the internet and the
alert's severity is at or above min_severity (1 = high). Never: an allowlisted address, the clinic's own
networks, the box itself, the WAN neighbourhood (gateway, modem), the DNS upstreams — an IDS false
positive must not cut the clinic off. Optionally quarantine an internal host on a high-severity
malware/C2 alert. The firewall's own guard (firewall.sets) refuses the same addresses again.
The firewall owns the record of what is blocked (firewall.sets: fw_entries and the kernel set); the IDS
keeps only the link "this incident caused that block" in ids_blocks (read back by ids.queries.block_incidents).
A block can be undone with `unblock`.

A source address is only trusted when the flow proves it (`source_proven`): a TCP flow whose handshake
completed (Suricata's stream state, or an application protocol detected with data coming back). One
forged UDP packet or TCP SYN could otherwise name a doctor's home, the vendor or a cloud service as the
attacker and cut it off for a day. The responder further never blocks the current VPN peer endpoints
(asked from the VPN area) and the hosts of the services the box uses (NTP, mail, webhook, LINE, syslog;
names as last resolved), and blocks at most MAX_BLOCKS addresses per LIMIT_WINDOW_S: past
that a flood is more likely forged, and the clinic is told instead (incident sid 1990104). Every alert
that would have blocked but did not gets a Japanese note on its incident saying why.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from appliance.audit import audit_log
from appliance.clock import monotonic, show, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.errors import MamoriError
from appliance.subsystem import Context
from ids.alerts import Alert, Endpoint
from ids.classtypes import classtype_of
from ids.eve_reader import add_counters
from ids.incidents import record_alerts
from ids.ingest import StoredAlert

log = logging.getLogger(__name__)

C2_CLASSTYPES = frozenset({"command-and-control", "domain-c2", "trojan-activity"})
MAX_BLOCKS = 20  # automatic blocks per LIMIT_WINDOW_S; past that the clinic is told instead
LIMIT_WINDOW_S = 600.0
LIMIT_SID = 1990104  # the incident "auto-block paused" (ids.mamori_rules)
RESOLVE_EVERY_S = 600.0

# Why an alert that asked for a block did not get one, as the clinic reads it on the incident.
HELD_JA: dict[str, str] = {
    "unproven": "自動遮断はしませんでした：この通信は接続が成立しておらず、送信元のアドレスは偽装できます。"
    "遮断すると、無関係の相手（医師の自宅や保守業者、クラウドのサービスなど）を止めてしまうおそれがあります。"
    "同じ送信元から何度も続く場合は、保守業者に相談してください。",
    "vpn_peer": "自動遮断はしませんでした：この送信元は VPN 利用者（医師・職員・保守業者）の接続元です。"
    "遮断すると VPN が切れるため、自動では止めません。心当たりを利用者に確認し、必要なら管理者が手動で遮断してください。",
    "service": "自動遮断はしませんでした：この送信元は Mamori や院内が使うサービス（{what}）のアドレスです。"
    "遮断すると時刻合わせや通知、診療システムが止まるため、自動では止めません。保守業者に相談してください。",
    "limit": "自動遮断はしませんでした：10分間の自動遮断の上限（{n}件）に達しました。"
    "大量の攻撃か、送信元を偽った通信の可能性があります。保守業者に連絡してください。",
}


@dataclass(frozen=True)
class Decision:
    action: str  # none / block / quarantine
    ip: str | None = None
    timeout_s: int = 0
    why: str = ""  # English, for logs and tests; the Japanese text comes from the incident's explanation
    held: str = ""  # a block the policy asked for but did not make: a key of HELD_JA


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


def source_proven(alert: Alert) -> bool:
    """Whether the alert's flow proves its source address: TCP whose handshake completed. Suricata's stream
    engine tracks the handshake (a blind ACK with a guessed sequence number is not accepted), reports its
    state, and detects an application protocol only on an established stream. A SYN, a SYN answered by
    a RST from the real owner of the address, UDP and ICMP are all one forged packet away."""
    f = alert.flow
    if f is None or alert.proto.upper() != "TCP":
        return False
    if f.state == "established":
        return True
    return alert.app_proto not in (None, "", "failed") and f.pkts_toclient > 0 and f.bytes_toclient > 0


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
        if not source_proven(alert):
            return Decision("none", alert.src.ip, why=f"source not proven ({alert.proto} flow without a "
                            "completed handshake), could be forged", held="unproven")  # fmt: skip
        return Decision("block", alert.src.ip, timeout, why=f"external source, sid {alert.sid}")
    if (
        policy.quarantine_internal_on_c2
        and alert.severity == 1
        and classtype_of(alert.category) in C2_CLASSTYPES
        and alert.src.zone in ("lan", "guest", "devices")
    ):
        return Decision("quarantine", alert.src.ip, timeout, why=f"internal host, C2/malware sid {alert.sid}")
    return Decision("none", why="source is not external")


def _host_of(text: str) -> str:
    """A host from a config value that may be a URL ('https://api.line.me/...') or a bare name/address."""
    return (urlsplit(text).hostname or "") if "://" in text else text.strip().strip("[]")


def service_hosts(cfg: MamoriConfig) -> dict[str, str]:
    """Host (name or address) → what it is, in Japanese: the services the box talks to. Never blocked
    automatically. (The inventory has internal hosts only, which are never blocked anyway.)"""
    n = cfg.notifications
    hosts: dict[str, str] = {h: "時刻合わせ（NTP）" for h in cfg.ntp.servers}
    if n.email:
        hosts[n.email.host] = "メール通知"
    if n.webhook:
        hosts[_host_of(n.webhook.url)] = "Webhook 通知"
    if n.line:
        hosts[_host_of(n.line.api_base)] = "LINE 通知"
    if n.syslog:
        hosts[n.syslog.host] = "syslog"
    return {k.lower(): v for k, v in hosts.items() if k}


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


class ServiceHosts:
    """The addresses of `service_hosts`: literals at once, names as last resolved. Names are resolved on a
    thread of their own at most every RESOLVE_EVERY_S, so a slow DNS never delays the EVE ingest; until the
    first answer only the literals are known (and a name that never resolves protects nothing)."""

    def __init__(self, cfg: MamoriConfig, resolve: Callable[[str], set[str]] | None = None) -> None:
        self.hosts = service_hosts(cfg)
        self.resolve = resolve or _resolve
        self._lock = threading.Lock()
        self._known: dict[str, str] = {a: what for h, what in self.hosts.items() if (a := _literal(h))}
        self._names = {h: what for h, what in self.hosts.items() if _literal(h) is None}
        self._resolved_at = float("-inf")
        self._thread: threading.Thread | None = None

    def what(self, ip: str) -> str | None:
        """What `ip` is among the services, or None; starts a refresh of the names when they are stale."""
        self.refresh()
        with self._lock:
            return self._known.get(ip)

    def refresh(self, wait: bool = False) -> None:
        if not self._names or monotonic() - self._resolved_at < RESOLVE_EVERY_S:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._resolved_at = monotonic()
            self._thread = threading.Thread(target=self._resolve_names, name="ids-service-hosts", daemon=True)
            self._thread.start()
        if wait:
            self._thread.join(10)

    def _resolve_names(self) -> None:
        found: dict[str, str] = {}
        for name, what in self._names.items():
            try:
                found.update(dict.fromkeys(self.resolve(name), what))
            except (OSError, UnicodeError) as exc:
                log.info("service host %s not resolved: %s", name, exc)
        with self._lock:
            self._known.update(found)  # the last resolved addresses stay: a name that moved was ours too


def _resolve(name: str) -> set[str]:
    return {str(ipaddress.ip_address(info[4][0].split("%")[0])) for info in socket.getaddrinfo(name, None)}


class AutoResponder:
    """Responder for AlertIngest: executes decisions through firewall.sets, once per address per window.

    `vpn_endpoints` answers which internet addresses VPN devices connect from (default: the VPN area's
    vpn.endpoints.peer_endpoints); `services` which addresses are the box's services (ServiceHosts)."""

    def __init__(
        self, ctx: Context, cfg: MamoriConfig, sets=None, vpn_endpoints: Callable[[], set[str]] | None = None,
        services: ServiceHosts | None = None, max_blocks: int = MAX_BLOCKS,
    ) -> None:  # fmt: skip
        if sets is None:
            from firewall.sets import FirewallSets  # the firewall area; imported late so ids loads without it

            sets = FirewallSets(ctx, cfg)
        self.ctx, self.cfg, self.sets = ctx, cfg, sets
        self.vpn_endpoints = vpn_endpoints or self._ask_vpn
        self.services = services or ServiceHosts(cfg)
        self.max_blocks = max_blocks
        self._done: dict[str, float] = {}  # ip -> monotonic time until which it is known blocked
        self._recent: deque[float] = deque()  # monotonic times of the automatic blocks of the last window
        self._limit_told = float("-inf")
        self._noted: set[tuple[int, str]] = set()  # (incident, held) already written on the incident
        self._peer_cache: set[str] | None = None

    def _ask_vpn(self) -> set[str]:
        try:
            from vpn.endpoints import peer_endpoints  # the VPN area answers; ids loads without it
        except ImportError:
            return set()
        return peer_endpoints(self.ctx, self.cfg)

    def _hold(self, decision: Decision) -> Decision:
        """The responder's own checks on a block the policy asked for: peers, services (impure: they ask)."""
        ip = decision.ip or ""
        if ip in self._peers():
            return replace(decision, action="none", why="source is a VPN peer endpoint", held="vpn_peer")
        what = self.services.what(ip)
        if what:
            return replace(decision, action="none", why=f"source is a service host ({what})", held="service")
        return decision

    def _peers(self) -> set[str]:
        if self._peer_cache is None:
            try:
                self._peer_cache = self.vpn_endpoints()
            except Exception:  # never block on not knowing: treat every candidate as unknown, logged
                log.exception("VPN peer endpoints could not be read")
                self._peer_cache = set()
        return self._peer_cache

    def _over_limit(self, now: float) -> bool:
        while self._recent and self._recent[0] <= now - LIMIT_WINDOW_S:
            self._recent.popleft()
        return len(self._recent) >= self.max_blocks

    def __call__(self, stored: list[StoredAlert]) -> None:
        now = monotonic()
        self._peer_cache: set[str] | None = None  # asked at most once per batch, only if there is a block
        todo: dict[str, tuple[Decision, StoredAlert]] = {}
        held: list[tuple[Decision, StoredAlert]] = []
        for item in stored:
            decision = decide_block(item.alert, self.cfg)
            if decision.ip is None or self._done.get(decision.ip, 0) > now or decision.ip in todo:
                if decision.held:
                    held.append((decision, item))
                continue
            if decision.action == "block":
                decision = self._hold(decision)
            if decision.action == "block" and self._over_limit(now):
                decision = replace(decision, action="none", why="auto-block limit reached", held="limit")
            if decision.action == "block":
                self._recent.append(now)
            if decision.held:
                held.append((decision, item))
            if decision.action == "none":
                continue
            todo[decision.ip] = (decision, item)
        if held:
            self._tell(held)
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

    def _tell(self, held: list[tuple[Decision, StoredAlert]]) -> None:
        """A Japanese note on each incident whose block was held (once per incident and reason), and for the
        rate limit one incident of its own per window, which the notification worker sends like any other."""
        notes: dict[int, list[str]] = {}
        for d, item in held:
            key = (item.incident_id, d.held)
            if key in self._noted:
                continue
            self._noted.add(key)
            log.warning("auto-block of %s held (%s), incident %d", d.ip, d.why, item.incident_id)
            what = self.services.what(d.ip or "") or ""
            notes.setdefault(item.incident_id, []).append(
                HELD_JA[d.held].format(what=what, n=self.max_blocks)
            )
        if len(self._noted) > 10_000:
            self._noted.clear()
        limit = [(d, i) for d, i in held if d.held == "limit"]
        new_limit = bool(limit) and monotonic() - self._limit_told >= LIMIT_WINDOW_S
        if new_limit:
            self._limit_told = monotonic()
        stamp = show(wall(), self.cfg.clinic.timezone)
        with self.ctx.db.transaction() as conn:
            for incident_id, texts in notes.items():
                conn.execute(
                    "UPDATE ids_incidents SET notes = CASE WHEN notes = '' THEN ? ELSE notes || char(10) || ? END"
                    " WHERE id = ?",
                    (*(["\n".join(f"[{stamp} Mamori] {t}" for t in texts)] * 2), incident_id),
                )
            counters: dict[str, int] = {}
            for d, _ in held:
                counters[f"auto_block_held_{d.held}"] = counters.get(f"auto_block_held_{d.held}", 0) + 1
            add_counters(conn, counters)
            if new_limit:
                first = limit[0][1].alert
                paused = Alert(wall(), LIMIT_SID, 1, f"MAMORI auto-block paused: {self.max_blocks} blocks in "
                               f"{int(LIMIT_WINDOW_S // 60)} minutes", "Attempted Denial of Service", 1,
                               first.src, Endpoint(first.dst.ip, None, first.dst.zone, first.dst.name), "")  # fmt: skip
                record_alerts(conn, [(paused, None)], LIMIT_WINDOW_S)

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
                [(wall(), d.ip, d.timeout_s, f"{d.action}: {self._reason(i)}", "ids", i.incident_id)
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
        if incident_id is not None:  # the link only: the firewall records the block itself (fw_entries)
            conn.execute(
                "INSERT INTO ids_blocks(ts, ip, timeout_s, reason, source, incident_id) VALUES (?, ?, ?, ?, ?, ?)",
                (wall(), addr, timeout_s or 0, reason, source, incident_id),
            )
        audit_log(ctx).record(actor, "ids.block", {"ip": addr, "timeout_s": timeout_s, "incident": incident_id},
                                source=source, conn=conn)  # fmt: skip
    return addr


def unblock(ctx: Context, cfg: MamoriConfig, ip: str, actor: str, source: str = "cli", sets=None) -> bool:
    """Undo a block (automatic or manual); audited. Returns whether it was in the firewall set."""
    if sets is None:
        from firewall.sets import FirewallSets

        sets = FirewallSets(ctx, cfg)
    present = sets.unblock(ip, source=source)
    with ctx.db.transaction() as conn:
        conn.execute("UPDATE ids_blocks SET undone_at = ? WHERE ip = ? AND undone_at IS NULL", (wall(), ip))
        audit_log(ctx).record(
            actor, "ids.unblock", {"ip": ip, "was_present": present}, source=source, conn=conn
        )
    return present
