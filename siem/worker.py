"""Daemon workers of the SIEM forwarder: rsyslogd supervised by PID, and the spooler that turns new records
into syslog lines.

RsyslogWorker follows appliance.adopted (like chronyd and sshd): rsyslogd outlives worker generations and
restarts only when its rendered rsyslog.conf changed. SpoolWorker polls the database once a second
(sooner while there is a backlog) and appends what is new to the spool; see siem/spool.py for why that
hand-off loses and repeats nothing. It also notes when rsyslogd last delivered something (delivery.json),
for `mamori siem status`.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import threading
from pathlib import Path

from appliance import queries as core_queries
from appliance.adopted import AdoptedProcessWorker
from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.fileio import atomic_write, create_once
from appliance.subsystem import Context
from ids import queries as ids_queries
from siem import stats
from siem.events import SOURCES, Event, format_line, from_alert, from_audit, from_incident
from siem.render import SiemPaths, config_hash, spool_budget_bytes
from siem.spool import Spool

log = logging.getLogger(__name__)
BATCH = 500
POLL_S = 1.0


def box_id(ctx: Context, cfg: MamoriConfig) -> str:
    """siem.box_id, or an id made once on this box (kept in the state directory, survives restarts)."""
    if cfg.siem.box_id:
        return cfg.siem.box_id
    path = SiemPaths.of(ctx.paths).root / "box-id"
    create_once(path, f"mamori-{secrets.token_hex(6)}\n", mode=0o644)
    return path.read_text(encoding="utf-8").strip()


# -- cursors (the area's own table) -------------------------------------------------------------------------


def read_cursors(ctx: Context) -> dict[str, int]:
    with ctx.db.connection() as conn:
        return {r[0]: int(r[1]) for r in conn.execute("SELECT source, last_id FROM siem_cursors")}


def write_cursors(ctx: Context, cursors: dict[str, int]) -> None:
    now = wall()
    with ctx.db.transaction() as conn:
        for source, last in cursors.items():
            conn.execute(
                "INSERT INTO siem_cursors(source, last_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(source) DO UPDATE SET last_id = excluded.last_id, updated_at = excluded.updated_at",
                (source, last, now),
            )


def starting_cursors(ctx: Context) -> dict[str, int]:
    """Where a forwarder switched on for the first time starts: now (the newest record of each source)."""
    incident, alert = ids_queries.last_ids(ctx.db)
    return {"audit": core_queries.last_audit_id(ctx.db), "incident": incident, "alert": alert}


class SpoolWorker:
    name = "siem-spool"

    def __init__(self, ctx: Context, cfg: MamoriConfig, poll: float = POLL_S) -> None:
        self.ctx, self.cfg, self.poll = ctx, cfg, poll
        self.sp = SiemPaths.of(ctx.paths)
        self.spool = Spool(self.sp.spool, self.sp.work)
        self.budget = spool_budget_bytes(cfg.siem.queue_mb)
        self.box = box_id(ctx, cfg)
        self.cursors: dict[str, int] = {}
        self.paused_logged = False

    def start(self) -> None:
        self.ctx.db.migrate()
        cursors = read_cursors(self.ctx)
        if not cursors:
            cursors = starting_cursors(self.ctx)
            write_cursors(self.ctx, cursors)
            log.info("siem: forwarding starts at %s", cursors)
        recovered = self.spool.recover()
        for source, last in recovered.items():
            if last > cursors.get(source, 0):
                log.warning("siem: %s-%d was spooled but its cursor not moved; moving it", source, last)
                cursors[source] = last
        self.cursors = cursors
        write_cursors(self.ctx, cursors)

    def collect(self) -> tuple[list[Event], dict[str, int]]:
        """New events of every source (at most BATCH each), in time order, and the cursors after them."""
        c = self.cursors
        after = dict(c)
        events: list[Event] = []
        rows = core_queries.audit_after(self.ctx.db, c.get("audit", 0), BATCH)
        events += [from_audit(r) for r in rows]
        if rows:
            after["audit"] = rows[-1]["id"]
        rows = ids_queries.incidents_after(self.ctx.db, c.get("incident", 0), BATCH)
        events += [from_incident(r) for r in rows]
        if rows:
            after["incident"] = rows[-1]["id"]
        rows, scanned = ids_queries.alerts_after(
            self.ctx.db, c.get("alert", 0), self.cfg.siem.alert_severity_max, BATCH
        )
        events += [from_alert(r) for r in rows]
        after["alert"] = scanned
        events.sort(key=lambda e: (e.ts, SOURCES.index(e.source), e.row_id))
        return events, after

    def step(self) -> float:
        """One round; returns how long to wait before the next (0 while a backlog remains)."""
        self.spool.prune()
        stats.cap(self.sp.stats)
        self.note_delivery()
        if self.spool.total_bytes() >= self.budget:
            if not self.paused_logged:
                log.warning("siem: the spool reached its budget; new records wait until rsyslogd catches up")
                self.paused_logged = True
            return self.poll
        self.paused_logged = False
        events, after = self.collect()
        self.spool.append([format_line(e, self.box) for e in events])
        if after != self.cursors:
            write_cursors(self.ctx, after)
            self.cursors = after
        return 0.0 if len(events) >= BATCH else self.poll

    def note_delivery(self) -> None:
        """Remember when rsyslogd's count of sent messages last grew (status: 最後に届けた時刻)."""
        current = stats.read_stats(self.sp.stats)
        path = self.sp.root / "delivery.json"
        try:
            prev = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            prev = {"processed": 0, "at": None}
        if current.processed != prev.get("processed"):
            at = wall() if current.processed > int(prev.get("processed") or 0) else prev.get("at")
            atomic_write(path, json.dumps({"processed": current.processed, "at": at}))

    def run(self, stop: threading.Event) -> None:
        self.start()
        while not stop.wait(self.step()):
            pass


class RsyslogWorker(AdoptedProcessWorker):
    name = "rsyslogd-siem"
    program = "rsyslogd"
    state_name = "rsyslogd-siem.state"
    executable = "rsyslogd"
    missing_message = "siem: rsyslogd is not installed (packages rsyslog, rsyslog-gnutls); logs are not sent"

    def conf_path(self) -> Path:
        return SiemPaths.of(self.ctx.paths).conf

    def config_hash(self, text: str) -> str:
        return config_hash(text)

    def wanted(self, text: str | None) -> bool:
        return bool(text)

    def spawn(self, conf: Path, text: str) -> subprocess.Popen:
        sp = SiemPaths.of(self.ctx.paths)
        for directory in (sp.spool, sp.work):
            directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        sp.pid.unlink(missing_ok=True)  # ours is not running (the adopted life cycle checked): a stale file
        argv = ["rsyslogd", "-n", "-f", str(conf), "-i", str(sp.pid)]
        with open(sp.log, "ab") as logfile:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                                    start_new_session=True)  # fmt: skip
