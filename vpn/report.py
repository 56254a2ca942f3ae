"""The work report of a vendor's maintenance window, for the clinic (MHLW guideline 6.0: remote
maintenance is logged, checked against the work plan and reported when the work ends).

It gathers: the approval (who, why, which systems), each portal session (start, end, why it ended),
the tunnel log (connects, endpoints, tunnel bytes), and from the box's own connection log
(vpn/connlog.py, whatever the IDS settings) every host and port the vendor's tunnel addresses reached —
first and last time, bytes each way — with those outside the approved targets called out, and the
connections the firewall refused. Non-goal: what was done inside a connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from appliance.clock import show
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from vpn.connlog import QUERY_MAX, Conn, ConnStore
from vpn.monitor import BYTES_EVERY_S, HANDSHAKE_GAP_S, LogEntry, peer_log
from vpn.sessions import END_REASON_JA, Session, SessionManager
from vpn.store import DeviceStore
from vpn.windows import Window, WindowStore

log = logging.getLogger(__name__)
# The monitor writes a tunnel's last bytes when it goes quiet (up to HANDSHAKE_GAP_S after the cut) or at
# its next minute: those records belong to the window that just ended.
TUNNEL_TAIL_S = HANDSHAKE_GAP_S + BYTES_EVERY_S + 30


@dataclass(frozen=True)
class Destination:
    """Every connection to one host and port (accepted or refused) during the window, added up."""

    dst: str
    proto: str
    port: int | None
    first: float
    last: float | None  # None: one of them is still open
    count: int  # connections, or attempts for refused ones
    sent: int  # from the vendor to the host
    received: int  # from the host back to the vendor
    uncounted: int = 0  # closed connections without byte counts (accounting off, or closed while unheard)
    open: int = 0
    outside: bool = False


@dataclass
class WindowReport:
    window: Window
    sessions: list[Session]
    log: list[LogEntry]
    reached: list[Destination] = field(default_factory=list)
    refused: list[Destination] = field(default_factory=list)
    outside_targets: list[str] = field(default_factory=list)
    truncated: bool = False  # more than QUERY_MAX connections: the lists are incomplete

    @property
    def tunnel_bytes(self) -> tuple[int, int]:
        """(received from the vendor's device, sent to it) by the tunnel, as WireGuard counted them."""
        rx = sum(e.rx for e in self.log if e.kind == "bytes")
        return rx, sum(e.tx for e in self.log if e.kind == "bytes")

    @property
    def bytes_total(self) -> tuple[int, int]:
        """(vendor -> clinic, clinic -> vendor): the connections' bytes; the tunnel's when larger (a
        connection still open has no count yet), so a session that moved data never shows 0."""
        sent = sum(d.sent for d in self.reached)
        received = sum(d.received for d in self.reached)
        rx, tx = self.tunnel_bytes
        return max(sent, rx), max(received, tx)


def _target_ips(cfg: MamoriConfig, targets: tuple[str, ...]) -> set[str]:
    hosts = {h.name: str(h.ip) for h in cfg.hosts if h.ip}
    groups = {g.name: g.members for g in cfg.groups}
    ips: set[str] = set()
    for t in targets:
        for name in groups.get(t, [t]):
            ips.add(hosts.get(name, name))
    return ips


def summarize(conns: list[Conn], allowed: set[str]) -> tuple[list[Destination], list[Destination]]:
    """(reached, refused), one Destination per (host, protocol, port), sorted by host and port."""
    groups: dict[tuple[str, str, str, int | None], list[Conn]] = {}
    for c in conns:
        groups.setdefault((c.verdict, c.dst, c.proto, c.dport), []).append(c)
    reached: list[Destination] = []
    refused: list[Destination] = []
    for (verdict, dst, proto, port), cs in groups.items():
        still_open = sum(1 for c in cs if c.last_ts is None)
        uncounted = sum(
            1 for c in cs if c.last_ts is not None and verdict == "accepted" and not c.sent + c.received
        )
        d = Destination(
            dst, proto, port, min(c.first_ts for c in cs),
            None if still_open else max(c.last_ts or 0.0 for c in cs),
            sum(c.attempts for c in cs) if verdict == "refused" else len(cs),
            sum(c.sent for c in cs), sum(c.received for c in cs), uncounted, still_open, dst not in allowed,
        )  # fmt: skip
        (refused if verdict == "refused" else reached).append(d)
    key = lambda d: (d.dst, d.proto, d.port or 0)  # noqa: E731
    return sorted(reached, key=key), sorted(refused, key=key)


def window_report(ctx: Context, cfg: MamoriConfig, window_id: int) -> WindowReport:
    window = WindowStore(ctx.db).get(window_id)
    sessions = [
        s for s in SessionManager(ctx, lambda: cfg).list(window.user, limit=1000) if s.window_id == window_id
    ]
    end = window.closed or window.ends
    entries = [
        e for e in peer_log(ctx, window.user, since=window.starts, limit=5000) if e.ts <= end + TUNNEL_TAIL_S
    ]
    rep = WindowReport(window, sorted(sessions, key=lambda s: s.started), sorted(entries, key=lambda e: e.ts))
    ips = {s.tunnel_ip for s in sessions}
    ips |= {d.ip6 for d in DeviceStore(ctx.db).all(window.user) if d.ip6 and d.ip4 in ips}
    conns = ConnStore(ctx.db).between(ips, window.starts, end, limit=QUERY_MAX + 1)
    rep.truncated = len(conns) > QUERY_MAX
    if rep.truncated:
        log.warning("window report #%d: more than %d connections; the first %d are listed", window_id,
                    QUERY_MAX, QUERY_MAX)  # fmt: skip
    rep.reached, rep.refused = summarize(conns[:QUERY_MAX], _target_ips(cfg, window.targets))
    rep.outside_targets = sorted({d.dst for d in rep.reached if d.outside})
    return rep


def port_text(d: Destination) -> str:
    return f"{d.proto}/{d.port if d.port is not None else '-'}"


def bytes_text(d: Destination, en: bool = False) -> str:
    """The bytes of a destination for a person; never a bare 0 where the count is unknown."""
    if d.open and not d.sent + d.received:
        return "open: counted when it closes" if en else "接続中（通信量は切断時に記録）"
    if d.uncounted == d.count:
        return "bytes not recorded" if en else "通信量は記録できませんでした"
    sent, received = f"{d.sent:,}", f"{d.received:,}"
    text = f"sent {sent} / received {received} bytes" if en else f"送信 {sent} / 受信 {received} バイト"
    if d.open:
        text += " (some still open)" if en else "（接続中のものを除く）"
    return text


def render_text(rep: WindowReport, tz: str = "Asia/Tokyo", lang: str = "ja") -> str:
    """A plain report a clinic can print and file."""

    def t(ts: float | None) -> str:
        return show(ts, tz, "%Y-%m-%d %H:%M:%S")

    w = rep.window
    en = lang == "en"
    rx, tx = rep.bytes_total
    lines = [
        f"{'Remote maintenance report' if en else '遠隔保守 作業報告'} #{w.id}",
        f"{'Vendor' if en else '保守業者'}: {w.user}",
        f"{'Approved by' if en else '承認者'}: {w.approved_by}  {'Window' if en else '時間枠'}: {t(w.starts)} - {t(w.ends)}",
        f"{'Reason' if en else '作業理由'}: {w.reason}",
        f"{'Targets' if en else '作業対象'}: {', '.join(w.targets)}",
        f"{'Sessions' if en else 'サインイン'}: {len(rep.sessions)}",
    ]
    for s in rep.sessions:
        reason = s.end_reason or ("open" if en else "接続中")
        if not en and s.end_reason in END_REASON_JA:
            reason = f"{END_REASON_JA[s.end_reason]}: {s.end_reason}"
        lines.append(f"  {t(s.started)} - {t(s.ended)} ({reason}) {s.tunnel_ip}")
    lines.append(
        f"Bytes vendor->clinic / clinic->vendor: {rx:,} / {tx:,}"
        if en
        else f"送信/受信バイト数（業者から/業者へ）: {rx:,} / {tx:,}"
    )
    for e in rep.log:
        if e.kind in ("connect", "endpoint", "disconnect", "two_endpoints", "large_transfer"):
            lines.append(f"  {t(e.ts)} {e.kind} {e.endpoint} {e.detail}".rstrip())
    lines.append("Hosts reached:" if en else "接続先:")
    if not rep.reached:
        lines.append("  none" if en else "  なし（院内の機器への接続はありませんでした）")
    for d in rep.reached:
        flag = (" !! OUTSIDE THE APPROVED TARGETS" if en else " !! 承認された対象以外") if d.outside else ""
        lines.append(f"  {d.dst} {port_text(d)} x{d.count}  {t(d.first)} - {t(d.last) if d.last else ('open' if en else '接続中')}"
                     f"  {bytes_text(d, en)}{flag}")  # fmt: skip
    if rep.refused:
        lines.append("Refused by the firewall:" if en else "ファイアウォールが拒否した接続:")
        for d in rep.refused:
            lines.append(f"  {d.dst} {port_text(d)} x{d.count}  {t(d.first)} - {t(d.last)}")
    if rep.outside_targets:
        label = "Outside the approved targets" if en else "承認された対象以外への接続"
        lines.append(f"!! {label}: {', '.join(rep.outside_targets)}")
    if rep.truncated:
        lines.append(
            f"!! Only the first {QUERY_MAX} connections are listed; there were more"
            if en
            else f"!! 接続が多いため最初の {QUERY_MAX} 件だけを集計しています（これ以外にも接続があります）"
        )
    return "\n".join(lines) + "\n"
