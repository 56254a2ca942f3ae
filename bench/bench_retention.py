"""Five simulated years of a busy clinic on a small disk: does the state database stay within its budget,
and are the dashboard and the alert list still fast at the end?

A busy clinic is taken as 2,000 alerts and 200,000 stored EVE events (dns, http, tls, fileinfo...; flows
are not stored) a day. Every simulated day is written as an eve.json (records of the real Suricata capture
in tests/fixtures, re-stamped with that day) and read by the real ingestion (ids.eve_reader + ids.ingest,
with the daemon's settings) under a fake clock that moves a day at a time; the retention coordinator
(appliance.retention.run_once) then runs once per simulated day, as the daemon would at that day's end.

Sampled, to fit in a few minutes on 2 cores: the last FULL_DAYS days are fed at full volume (enough to
fill the IDS share of the budget: the final state is what five full years leave), the days before at
1/EVENT_THIN of the events and 1/ALERT_THIN of the alerts, and before the last DAILY_DAYS days a simulated
week is one step (one eve.json, one retention run). The table says so. The budget is the default
(`storage.max_db_mb` 2048, `ids.max_db_mb` 1024). Set MAMORI_BENCH_FULL_DAYS / MAMORI_BENCH_YEARS to change.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"
EXAMPLE = REPO / "examples" / "clinic.yaml"
DAY = 86400.0
EVENTS_PER_DAY = 200_000
ALERTS_PER_DAY = 2_000
EVENT_THIN = 200
ALERT_THIN = 10
DAILY_DAYS = 30
TARGET_MS = 200.0


def _templates() -> list[dict]:
    from ids.daemon import skip_store
    from ids.eve_reader import EveReader  # noqa: F401  (imported for the same module set as the daemon)

    skip = {"flow", "netflow", "stats", "alert"}
    out = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    kept = [r for r in out if r.get("event_type") not in skip]
    assert kept and skip_store  # the fixture has stored types besides flows
    return kept


def _day_lines(templates: list[dict], day_start: float, events: int, alerts: int, seq: int) -> bytes:
    parts = []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(day_start + 3600))
    for i in range(events):
        rec = dict(templates[i % len(templates)])
        rec["timestamp"] = stamp
        rec["flow_id"] = seq + i
        parts.append(json.dumps(rec, separators=(",", ":")))
    for i in range(alerts):
        ip = f"198.51.{100 + i % 3}.{i % 250}"
        parts.append(json.dumps({
            "timestamp": stamp, "event_type": "alert", "src_ip": ip, "src_port": 40000 + i % 20000,
            "dest_ip": "203.0.113.2", "dest_port": 3389 if i % 2 else 445, "proto": "TCP",
            "alert": {"action": "allowed", "gid": 1, "signature_id": 1990001 + i % 5, "rev": 1,
                      "signature": "MAMORI bench alert", "category": "Attempted Administrator Privilege Gain",
                      "severity": 1 + i % 3}}, separators=(",", ":")))  # fmt: skip
    return ("\n".join(parts) + "\n").encode()


def run() -> list[tuple[str, str, str]]:
    from appliance.config.load import load_config
    from appliance.paths import Paths
    from appliance.retention import MB, run_once
    from appliance.storage import Database
    from appliance.subsystem import Context
    from ids.daemon import skip_store
    from ids.eve_reader import EveReader
    from ids.ingest import AlertIngest

    years = float(os.environ.get("MAMORI_BENCH_YEARS", "5"))
    full_days = int(os.environ.get("MAMORI_BENCH_FULL_DAYS", "8"))
    days = int(years * 365)
    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-retention-"))
    try:
        paths = Paths(config=tmp / "config.yaml", state_dir=tmp / "state")
        paths.ensure()
        shutil.copy(EXAMPLE, paths.config)
        db = Database(paths.db)
        db.migrate()
        ctx = Context(paths, db)
        cfg = load_config(EXAMPLE).model
        budget = cfg.storage.max_db_mb * MB
        templates = _templates()
        now_box = [time.time() - days * DAY]
        ingest = AlertIngest(cfg)
        eve = tmp / "eve.json"
        eve.write_bytes(b"")
        reader = EveReader(db, eve, sink=ingest.sink, on_commit=ingest.on_commit, batch_lines=5000,
                           skip_store=skip_store(cfg), clock=lambda: now_box[0])  # fmt: skip
        fed_events = fed_alerts = seq = 0
        retention_s, worst_retention, peak_used = 0.0, 0.0, 0
        started = time.monotonic()
        d = runs = 0
        while d < days:
            # the last DAILY_DAYS one day at a time; before that a simulated week per step (thinned volume)
            step = (
                1 if d >= days - max(full_days, DAILY_DAYS) else min(7, days - max(full_days, DAILY_DAYS) - d)
            )
            full = d >= days - full_days
            events = (EVENTS_PER_DAY if full else EVENTS_PER_DAY // EVENT_THIN) * step
            alerts = (ALERTS_PER_DAY if full else ALERTS_PER_DAY // ALERT_THIN) * step
            day_start = now_box[0]
            new = tmp / "eve.json.new"
            new.write_bytes(_day_lines(templates, day_start, events, alerts, seq))
            os.replace(new, eve)  # a new inode: the reader takes it as a rotation
            seq += events
            now_box[0] = day_start + step * DAY - 60
            while reader.poll(max_batches=10_000):
                pass
            fed_events, fed_alerts = fed_events + events, fed_alerts + alerts
            t0 = time.monotonic()
            report = run_once(db, cfg, now_box[0])
            took = time.monotonic() - t0
            retention_s, runs = retention_s + took, runs + 1
            worst_retention = max(worst_retention, took)
            peak_used = max(peak_used, report.used_before)
            now_box[0] = day_start + step * DAY
            d += step
        reader.close()
        total_s = time.monotonic() - started
        file_mb = paths.db.stat().st_size / MB
        with db.connection() as conn:
            kept_events = conn.execute("SELECT count(*) FROM ids_events").fetchone()[0]
            kept_alerts = conn.execute("SELECT count(*) FROM ids_alerts").fetchone()[0]
        dash, listing = _page_times(ctx)
        b = budget / MB
        return [
            (f"retention: simulated {days} days ({years:g} y); last {full_days} at full volume",
             f"{fed_events:,} events, {fed_alerts:,} alerts fed",
             f"earlier: 1/{EVENT_THIN} of events, 1/{ALERT_THIN} of alerts, a week per step before the last {DAILY_DAYS} days"),
            ("retention: run time (ingestion and retention)", f"{total_s:.0f} s",
             f"{runs} retention runs: {retention_s:.0f} s, worst {worst_retention:.1f} s"),
            ("retention: DB file at the end / budget", f"{file_mb:.0f} MB / {b:.0f} MB", f"ratio {file_mb / b:.2f} ≤ 1"),
            ("retention: peak pages in use before a run / budget", f"{peak_used / MB:.0f} MB",
             f"ratio {peak_used / budget:.2f} ≤ 1"),
            ("retention: kept at the end", f"{kept_events:,} events, {kept_alerts:,} alerts", "info"),
            ("retention: dashboard p95 at the end", f"{dash:.1f} ms", f"ratio {dash / TARGET_MS:.2f} ≤ 1"),
            ("retention: alert list p95 at the end", f"{listing:.1f} ms", f"ratio {listing / TARGET_MS:.2f} ≤ 1"),
        ]  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _page_times(ctx) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    import pyotp

    from bench.bench_webui import _p95
    from webui import create_app
    from webui.accounts import AccountStore

    app = create_app(ctx, subsystems=[], confirm_seconds=None)
    AccountStore(ctx.db).create("bench", "Bench-Mark-Password-1", "admin", totp_secret=pyotp.random_base32())
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["sid"] = AccountStore(ctx.db).open_session("bench", "127.0.0.1")
    client.get("/")
    return _p95(client, "/", 40), _p95(client, "/alerts/", 40)


if __name__ == "__main__":
    for row in run():
        print(*row, sep="\t")
