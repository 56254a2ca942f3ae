"""Metrics benchmark: the cost of one Prometheus scrape (the whole /metrics exposition) on a busy box.

The state database holds 1M IDS alerts (real alerts of the Suricata 7.0.10 fixture, normalised by the IDS
area, spread over 90 days; each internet source attacks for about two hours (1,000 alerts), so
alerts group into incidents as on a real box, stored in batches with the area's own
`record_alerts` and per-severity counters, as the ingestion stores them), their incidents (a fifth left
open), and 50k audit entries of which 5k refused VPN sign-ins. A scrape is `metrics.exposition`: every
section, from the live revision to the text. p50 and p99 over SCRAPES scrapes, against a 100 ms target.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"
EXAMPLE = REPO / "examples" / "clinic.yaml"
N_ALERTS = int(os.environ.get("MAMORI_BENCH_METRICS_ALERTS", "1000000"))
SCRAPES = 200
TARGET_MS = 100.0
BATCH = 50_000
DAY = 86400


def _templates(cfg) -> list:
    from ids.alerts import AlertFormatError, Resolver, normalise

    resolver, out = Resolver(cfg), []
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("event_type") == "alert":
            try:
                out.append(normalise(record, resolver))
            except AlertFormatError:
                continue
    return out


def _fill(ctx, cfg, now: float) -> None:
    from ids.eve_reader import add_counters
    from ids.incidents import record_alerts
    from ids.ingest import severity_counter

    templates = _templates(cfg)
    span = 90 * DAY
    start = now - span
    for first in range(0, N_ALERTS, BATCH):
        items = []
        counts: dict[str, int] = {}
        for i in range(first, min(first + BATCH, N_ALERTS)):
            t = templates[i % len(templates)]
            src = dataclasses.replace(t.src, ip=f"198.51.{(i // 250_000) % 20}.{(i // 1000) % 250 + 1}")
            items.append((dataclasses.replace(t, ts=start + span * i / N_ALERTS, src=src), None))
            counts[severity_counter(t.severity)] = counts.get(severity_counter(t.severity), 0) + 1
        with ctx.db.transaction() as conn:
            record_alerts(conn, items, 3600.0)
            add_counters(conn, {"alerts": len(items), **counts})
    with ctx.db.transaction() as conn:  # the clinic handled most incidents; a fifth are still open
        conn.execute("UPDATE ids_incidents SET state = '解決済み' WHERE id % 5 != 0")
        rows = [(now - 50_000 + i, "yamada" if i % 10 else "?", "vpn", "10.99.0.2",
                 "vpn.signin.refused" if i % 10 == 0 else "web.signin",
                 json.dumps({"reason": "bad"}), "", "") for i in range(50_000)]  # fmt: skip
        conn.executemany(
            "INSERT INTO audit(ts, actor, source, remote, action, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )


def run() -> list[tuple[str, str, str]]:
    from appliance.config.load import load_config
    from appliance.paths import Paths
    from appliance.revisions import RevisionStore
    from appliance.storage import Database
    from appliance.subsystem import Context
    from metrics.exposition import exposition

    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-metrics-"))
    try:
        paths = Paths(config=tmp / "config.yaml", state_dir=tmp / "state")
        paths.ensure()
        ctx = Context(paths, Database(paths.db))
        ctx.db.migrate()
        text = EXAMPLE.read_text(encoding="utf-8")
        cfg = load_config(EXAMPLE).model
        with ctx.db.transaction() as conn:
            RevisionStore(ctx.db).add(conn, text, "bench", "cli", "", "", "applied")
        began = time.monotonic()
        _fill(ctx, cfg, time.time())
        fill_s = time.monotonic() - began
        with ctx.db.connection() as conn:
            alerts = conn.execute("SELECT COUNT(*) FROM ids_alerts").fetchone()[0]
            incidents = conn.execute("SELECT COUNT(*) FROM ids_incidents").fetchone()[0]
        size = len(exposition(ctx, cfg))  # warm-up (page cache), as after the box's first scrape
        times = []
        for _ in range(SCRAPES):
            t0 = time.perf_counter()
            exposition(ctx, cfg)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
        ok = "ok" if p99 <= TARGET_MS else "MISSED"
        return [
            (f"database: alerts / incidents (filled in {fill_s:.0f} s)", f"{alerts:,} / {incidents:,}", ""),
            (f"one scrape, {alerts:,} alerts: p50 / p99 ({SCRAPES} scrapes, {size} bytes)",
             f"{p50:.1f} / {p99:.1f} ms", f"p99 / {TARGET_MS:.0f} ms = {p99 / TARGET_MS:.2f} ({ok})"),
        ]  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
