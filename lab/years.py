"""Years of a busy clinic's records, compressed in time: the one simulation behind the retention benchmark
(bench/bench_retention.py, timings) and the five-year test (tests/long/test_five_years.py, what must hold).

The timeline ends at `end` (default: now, from appliance.clock, so a run under MAMORI_TEST_NOW ends there)
and starts the same clinic date `years` earlier: every JST month boundary, leap day and retention age of
those years is crossed. It is walked in steps that never cross a JST month start (so a check can run at
every month end), a day per step over the last `daily_days` and up to a week per step before.

Each step, under a clock that stands at the step's end (time-machine, as tests/conftest.py does for a
whole run; the EVE reader and the accounts get it as their `clock`):
- IDS: the step's EVE events (records of the real Suricata capture in tests/fixtures, re-stamped) and
  alerts are written as a new eve.json and read by the real ingestion (ids.eve_reader + ids.ingest, with
  the daemon's settings): the file is replaced, which the reader takes as a rotation;
- the smaller growing tables, each through its area's own writer: firewall drops (firewall.droplog) and a
  new device a month (firewall.inventory), VPN connects (vpn.monitor.record), a web session (webui.accounts) and
  sign-ins in the audit log (appliance.audit);
- then the retention coordinator (appliance.retention.run_once) runs once, as the daemon would.

Non-goals: wall-clock speed (the benchmark measures it); the engines themselves (Suricata, nftables).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import time_machine

from appliance import clock
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"
EXAMPLE = REPO / "examples" / "clinic.yaml"
DAY = 86400.0
STAMPS_PER_STEP = (
    24  # EVE timestamps spread over a step (formatting one per record would cost more than it shows)
)
ACCOUNT = "yamada-sim"


@dataclass(frozen=True)
class Volume:
    """How much a simulated day holds. The last `full_days` days get the full IDS volume; the days before
    1/event_thin of the events and 1/alert_thin of the alerts (the final state is what full years leave as
    long as the full days fill the IDS budget)."""

    events_per_day: int = 200_000
    alerts_per_day: int = 2_000
    full_days: int = 8
    event_thin: int = 200
    alert_thin: int = 10
    daily_days: int = 30
    drops_per_day: int = 40
    vpn_connects_per_day: int = 2
    signins_per_day: int = 1


@dataclass(frozen=True)
class Step:
    """One step of the timeline: [start, end), and whether `end` is the start of a JST month."""

    start: float
    end: float
    month_end: bool
    full: bool


@dataclass
class Result:
    """What was fed, and what retention did, over the whole run."""

    days: int = 0
    steps: int = 0
    events: int = 0
    alerts: int = 0
    retention_runs: int = 0
    retention_s: float = 0.0
    worst_retention_s: float = 0.0
    peak_used: int = 0
    deleted: dict[str, int] = field(default_factory=dict)


def start_of(end: float, years: int, tz: str | None = None) -> float:
    """The same clinic date and time `years` earlier (29 February → 28 February)."""
    local = clock.clinic_time(end, tz)
    try:
        back = local.replace(year=local.year - years)
    except ValueError:
        back = local.replace(year=local.year - years, day=28)
    return back.timestamp()


def next_month(ts: float, tz: str | None = None) -> float:
    """The next JST (clinic zone) month start after `ts`."""
    local = clock.clinic_time(ts, tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return dt.datetime(year, month, 1, tzinfo=clock.zone(tz)).timestamp()


def timeline(start: float, end: float, volume: Volume, tz: str | None = None) -> list[Step]:
    """Steps from start to end: a week at most, a day over the last daily_days, never across a month start."""
    daily_from = end - volume.daily_days * DAY
    full_from = end - volume.full_days * DAY
    steps, t = [], start
    while t < end:
        limit = t + (DAY if t >= daily_from - 1 else 7 * DAY)
        if t < daily_from:
            limit = min(limit, daily_from)
        month = next_month(t, tz)
        nxt = min(limit, month, end)
        steps.append(Step(t, nxt, nxt == month, nxt > full_from))
        t = nxt
    return steps


def _templates() -> list[dict]:
    skip = {"flow", "netflow", "stats", "alert"}
    kept = [
        r
        for r in (json.loads(line) for line in FIXTURE.read_text().splitlines())
        if r.get("event_type") not in skip
    ]
    if not kept:
        raise RuntimeError(f"{FIXTURE} has no stored event types besides flows")
    return kept


def eve_lines(templates: list[dict], step: Step, events: int, alerts: int, seq: int) -> bytes:
    """The step's EVE file: `events` stored records and `alerts` alerts from three attacking /24s."""
    span = max(step.end - step.start - 120, 1.0)
    stamps = [
        time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(step.start + span * k / STAMPS_PER_STEP))
        for k in range(STAMPS_PER_STEP)
    ]
    parts = []
    for i in range(events):
        rec = dict(templates[i % len(templates)])
        rec["timestamp"] = stamps[i % STAMPS_PER_STEP]
        rec["flow_id"] = seq + i
        parts.append(json.dumps(rec, separators=(",", ":")))
    for i in range(alerts):
        ip = f"198.51.{100 + i % 3}.{i % 250}"
        parts.append(json.dumps({
            "timestamp": stamps[i % STAMPS_PER_STEP], "event_type": "alert", "src_ip": ip,
            "src_port": 40000 + i % 20000, "dest_ip": "203.0.113.2", "dest_port": 3389 if i % 2 else 445,
            "proto": "TCP",
            "alert": {"action": "allowed", "gid": 1, "signature_id": 1990001 + i % 5, "rev": 1,
                      "signature": "MAMORI bench alert", "category": "Attempted Administrator Privilege Gain",
                      "severity": 1 + i % 3}}, separators=(",", ":")))  # fmt: skip
    return ("\n".join(parts) + "\n").encode() if parts else b""


def _per_day(n: int, step: Step) -> int:
    return round(n * (step.end - step.start) / DAY)


class ClinicYears:
    """A state directory and the writers of every area, fed step by step (see the module docstring)."""

    def __init__(self, root: Path, volume: Volume, config_text: str | None = None) -> None:
        from appliance.config.load import load_config
        from ids.daemon import skip_store
        from ids.eve_reader import EveReader
        from ids.ingest import AlertIngest

        self.root, self.volume = root, volume
        self.paths = Paths(config=root / "config.yaml", state_dir=root / "state")
        self.paths.ensure()
        if config_text is None:
            shutil.copy(EXAMPLE, self.paths.config)
        else:
            self.paths.config.write_text(config_text)
        self.cfg = load_config(self.paths.config).model
        self.db = Database(self.paths.db)
        self.db.migrate()
        self.ctx = Context(self.paths, self.db)
        self.now = clock.wall()
        self.templates = _templates()
        self.eve = root / "eve.json"
        self.eve.write_bytes(b"")
        ingest = AlertIngest(self.cfg)
        self.reader = EveReader(self.db, self.eve, sink=ingest.sink, on_commit=ingest.on_commit,
                                batch_lines=5000, skip_store=skip_store(self.cfg),
                                clock=lambda: self.now)  # fmt: skip
        self.seq = self.steps = 0
        self.retained_at = 0.0  # the clock of the last retention run

    def close(self) -> None:
        self.reader.close()

    def volume_of(self, step: Step) -> tuple[int, int]:
        """(events, alerts) of a step: full or thinned volume, in proportion to its length."""
        v, days = self.volume, (step.end - step.start) / DAY
        per_events = v.events_per_day if step.full else v.events_per_day // v.event_thin
        per_alerts = v.alerts_per_day if step.full else v.alerts_per_day // v.alert_thin
        return int(per_events * days), int(per_alerts * days)

    def feed(self, step: Step) -> tuple[int, int]:
        """Everything the clinic writes during one step, the clock standing at the step's end; returns
        the (events, alerts) fed."""
        from appliance.audit import AuditLog
        from firewall import droplog
        from firewall.inventory import Inventory, Sighting
        from firewall.nflog import Drop
        from vpn.monitor import LogEntry
        from vpn.monitor import record as vpn_record
        from webui.accounts import AccountStore

        events, alerts = self.volume_of(step)
        new = self.root / "eve.json.new"
        new.write_bytes(eve_lines(self.templates, step, events, alerts, self.seq))
        os.replace(new, self.eve)  # a new inode: the reader takes it as a rotation
        self.seq += events
        self.now = step.end - 60
        with time_machine.travel(self.now, tick=False):
            while self.reader.poll(max_batches=10_000):
                pass
            span = step.end - step.start
            self.steps += 1
            n = self.steps
            drops = max(_per_day(self.volume.drops_per_day, step), 1)
            droplog.store(self.db, [
                Drop(step.start + span * k / drops, "mamori drop wan>lan blocked-inbound: ", "wan0", "",
                     f"198.51.100.{k % 250}", "203.0.113.2", "tcp", 40000 + k, 23)
                for k in range(drops)
            ])  # fmt: skip
            if step.month_end:  # a new device a month (each one is also a warning in the log)
                mac = f"02:00:00:{n >> 8 & 255:02x}:{n & 255:02x}:01"
                Inventory(self.ctx, self.cfg).observe(
                    [Sighting(mac, f"192.168.10.{100 + n % 100}", "lan0")], step.start
                )
            connects = max(_per_day(self.volume.vpn_connects_per_day, step), 1)
            vpn_record(self.ctx, [
                LogEntry(step.start + span * k / connects, "yamada", 1, "connect", "198.51.100.77:51820")
                for k in range(connects)
            ])  # fmt: skip
            accounts = AccountStore(self.db, clock=lambda: self.now)
            if accounts.get(ACCOUNT) is None:
                accounts.create(ACCOUNT, "Five-Years-Password-1", "admin")
            accounts.open_session(ACCOUNT, "192.168.10.20")
            audit = AuditLog(self.db, self.paths.keys_dir / "audit.key")
            signins = max(_per_day(self.volume.signins_per_day, step), 1)
            for k in range(signins):  # the audit log stamps its own clock: moved to each sign-in
                with time_machine.travel(step.start + span * k / signins, tick=False):
                    audit.record(
                        ACCOUNT, "webui.login", {"simulated": True}, source="webui", remote="192.168.10.20"
                    )
        return events, alerts

    def retain(self, result: Result) -> Any:
        from appliance.retention import run_once

        with time_machine.travel(self.now, tick=False):
            t0 = time.monotonic()
            report = run_once(self.db, self.cfg, self.now)
            self.retained_at = self.now
            took = time.monotonic() - t0
        result.retention_runs += 1
        result.retention_s += took
        result.worst_retention_s = max(result.worst_retention_s, took)
        result.peak_used = max(result.peak_used, report.used_before)
        for table, n in report.deleted.items():
            result.deleted[table] = result.deleted.get(table, 0) + n
        return report


def simulate(
    root: Path,
    volume: Volume,
    years: int = 5,
    end: float | None = None,
    config_text: str | None = None,
    on_step: Callable[[ClinicYears, Step], None] | None = None,
) -> tuple[ClinicYears, Result]:
    """Feed `years` of a clinic into a new state directory under `root`, running retention after every
    step and `on_step` (a test's checks) after that. Returns the simulation (its database open, the clock
    left at the end) and what was fed. The caller removes `root`."""
    sim = ClinicYears(root, volume, config_text)
    end = clock.wall() if end is None else end
    tz = sim.cfg.clinic.timezone
    start = start_of(end, years, tz)
    result = Result(days=round((end - start) / DAY))
    try:
        for step in timeline(start, end, volume, tz):
            events, alerts = sim.feed(step)
            result.steps += 1
            result.events += events
            result.alerts += alerts
            sim.retain(result)
            sim.now = step.end
            if on_step is not None:
                on_step(sim, step)
    finally:
        sim.close()
    return sim, result
