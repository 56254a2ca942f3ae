"""What the SIEM forwarder is doing: for `mamori siem status`, the metrics and the web UI.

Never raises for a stopped rsyslogd or an unreachable collector: those are states. "Reachable" is a TCP
connection to the collector's port made now (from the box, a few seconds at most), not a guess from old
counters; whether TLS then succeeds is rsyslogd's to report (its log, and the queue growing).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from siem.render import ACTION_NAME, SiemPaths
from siem.spool import Spool
from siem.stats import read_stats
from siem.worker import RsyslogWorker


@dataclass(frozen=True)
class SiemState:
    enabled: bool
    collector: str = ""
    running: bool = False  # rsyslogd (ours) is running
    reachable: bool | None = None  # None: not probed
    queued: int = 0  # messages in rsyslogd's queue (memory and disk)
    queue_disk_bytes: int = 0  # rsyslogd's queue files
    spool_bytes: int = 0  # spool files on disk
    spool_unread_bytes: int = 0  # not yet read by rsyslogd
    sent: int = 0  # messages rsyslogd handed to the collector since it started
    last_delivered: float | None = None  # when that count last grew (wall time)
    cursors: dict[str, int] | None = None


def queue_disk_bytes(sp: SiemPaths) -> int:
    if not sp.work.is_dir():
        return 0
    return sum(p.stat().st_size for p in sp.work.glob(f"{ACTION_NAME}.*") if p.is_file())


def probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def siem_state(ctx: Context, cfg: MamoriConfig, probe_timeout: float = 3.0) -> SiemState:
    s = cfg.siem
    sp = SiemPaths.of(ctx.paths)
    spool = Spool(sp.spool, sp.work)
    stats = read_stats(sp.stats)
    try:
        delivery = json.loads((sp.root / "delivery.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        delivery = {}
    with ctx.db.connection() as conn:
        cursors = {r[0]: int(r[1]) for r in conn.execute("SELECT source, last_id FROM siem_cursors")}
    running = RsyslogWorker(ctx).running_pid() is not None
    return SiemState(
        enabled=s.enabled, collector=f"{s.collector}:{s.port}" if s.collector else "", running=running,
        reachable=probe(s.collector, s.port, probe_timeout) if s.enabled and probe_timeout > 0 else None,
        queued=stats.depth, queue_disk_bytes=queue_disk_bytes(sp), spool_bytes=spool.total_bytes(),
        spool_unread_bytes=spool.unread_bytes(), sent=stats.processed, last_delivered=delivery.get("at"),
        cursors=cursors,
    )  # fmt: skip
