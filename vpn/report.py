"""The session report of a vendor's maintenance window, for the clinic (MHLW guideline 6.0: remote
maintenance is logged, checked against the work plan and reported when the work ends).

It gathers: the approval (who, why, which systems), each portal session (start, end, why it ended),
the tunnel log (connects, endpoints, bytes) and, when the IDS recorded flows, the hosts and ports the
vendor's tunnel address reached — with those outside the approved targets called out. Flow records come
from Suricata's EVE (network data): malformed ones are counted and reported, never guessed at.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from vpn.monitor import LogEntry, peer_log
from vpn.sessions import END_REASON_JA, Session, SessionManager
from vpn.store import DeviceStore
from vpn.windows import Window, WindowStore

log = logging.getLogger(__name__)
MAX_FLOWS = 20000


@dataclass
class WindowReport:
    window: Window
    sessions: list[Session]
    log: list[LogEntry]
    reached: dict[tuple[str, int | None, str], int] = field(default_factory=dict)
    outside_targets: list[str] = field(default_factory=list)
    malformed_flows: int = 0
    flows_truncated: bool = False  # more than MAX_FLOWS records of the vendor: the list is incomplete

    @property
    def bytes_total(self) -> tuple[int, int]:
        return sum(e.rx for e in self.log if e.kind == "bytes"), sum(
            e.tx for e in self.log if e.kind == "bytes"
        )


def _target_ips(cfg: MamoriConfig, targets: tuple[str, ...]) -> set[str]:
    hosts = {h.name: h.ip for h in cfg.hosts if h.ip}
    groups = {g.name: g.members for g in cfg.groups}
    ips: set[str] = set()
    for t in targets:
        for name in groups.get(t, [t]):
            ips.add(hosts.get(name, name))
    return ips


def _flows(ctx: Context, ips: set[str], start: float, end: float) -> tuple[dict, int, bool]:
    """The vendor's flows, chosen in SQL by source address before the cap: the clinic's other traffic in
    the same hours must not push them out of the report. Returns (reached, malformed, truncated)."""
    reached: dict[tuple[str, int | None, str], int] = {}
    bad = 0
    marks = ",".join("?" * len(ips))
    with ctx.db.connection() as conn:
        rows = conn.execute(
            "SELECT raw FROM ids_events WHERE event_type = 'flow' AND received >= ? AND received <= ?"
            f" AND (CASE WHEN json_valid(raw) THEN json_extract(raw, '$.src_ip') END) IN ({marks})"
            " ORDER BY id LIMIT ?",
            (start, end + 300, *sorted(ips), MAX_FLOWS + 1),  # flows are written when they end: 5 min more
        ).fetchall()
    truncated = len(rows) > MAX_FLOWS
    if truncated:
        log.warning(
            "window report: more than %d flow records; the report lists the first %d", MAX_FLOWS, MAX_FLOWS
        )
    for (raw,) in rows[:MAX_FLOWS]:
        try:
            ev = json.loads(raw)
            if ev.get("src_ip") not in ips:
                continue
            port = ev.get("dest_port")
            key = (
                str(ipaddress.ip_address(ev["dest_ip"])),
                int(port) if port is not None else None,
                str(ev["proto"]),
            )
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        reached[key] = reached.get(key, 0) + 1
    if bad:
        log.warning("window report: %d malformed flow record(s) skipped", bad)
    return reached, bad, truncated


def window_report(ctx: Context, cfg: MamoriConfig, window_id: int) -> WindowReport:
    window = WindowStore(ctx.db).get(window_id)
    sessions = [
        s for s in SessionManager(ctx, lambda: cfg).list(window.user, limit=1000) if s.window_id == window_id
    ]
    end = window.closed or window.ends
    entries = [e for e in peer_log(ctx, window.user, since=window.starts, limit=5000) if e.ts <= end]
    rep = WindowReport(window, sorted(sessions, key=lambda s: s.started), sorted(entries, key=lambda e: e.ts))
    ips = {s.tunnel_ip for s in sessions}
    ips |= {d.ip6 for d in DeviceStore(ctx.db).all(window.user) if d.ip6 and d.ip4 in ips}
    if ips:
        rep.reached, rep.malformed_flows, rep.flows_truncated = _flows(ctx, ips, window.starts, end)
    allowed = _target_ips(cfg, window.targets)
    rep.outside_targets = sorted({dst for (dst, _, _) in rep.reached if dst not in allowed})
    return rep


def render_text(rep: WindowReport, tz: str = "Asia/Tokyo", lang: str = "ja") -> str:
    """A plain report a clinic can print and file."""
    zone = ZoneInfo(tz)

    def t(ts: float | None) -> str:
        return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M") if ts else "-"

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
    lines.append(f"{'Bytes received/sent' if en else '受信/送信バイト数'}: {rx} / {tx}")
    for e in rep.log:
        if e.kind in ("connect", "endpoint", "disconnect", "two_endpoints", "large_transfer"):
            lines.append(f"  {t(e.ts)} {e.kind} {e.endpoint} {e.detail}".rstrip())
    if rep.reached:
        lines.append("Hosts reached:" if en else "接続先:")
        for (dst, port, proto), n in sorted(rep.reached.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            lines.append(f"  {dst} {proto}/{port if port is not None else '-'} x{n}")
    else:
        lines.append(
            "Hosts reached: no flow records (IDS off?)"
            if en
            else "接続先: 記録なし（IDS が動いていない可能性）"
        )
    if rep.outside_targets:
        label = "Outside the approved targets" if en else "承認された対象以外への接続"
        lines.append(f"!! {label}: {', '.join(rep.outside_targets)}")
    if rep.flows_truncated:
        lines.append(
            f"!! Only the first {MAX_FLOWS} flow records are listed; there were more"
            if en
            else f"!! 通信記録が多いため最初の {MAX_FLOWS} 件だけを集計しています（これ以外にも接続があります）"
        )
    if rep.malformed_flows:
        lines.append(f"({rep.malformed_flows} malformed flow records skipped)")
    return "\n".join(lines) + "\n"
