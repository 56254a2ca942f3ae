"""Five simulated years of a busy clinic on a small disk: does the state database stay within its budget,
and are the dashboard and the alert list still fast at the end?

A busy clinic is taken as 2,000 alerts and 200,000 stored EVE events (dns, http, tls, fileinfo...; flows
are not stored) a day. The simulation is lab/years.py (shared with tests/long/test_five_years.py, which
asserts what must hold at every month end; this file only measures): real EVE ingestion, the other areas'
writers and the retention coordinator once per step, under a clock that moves with the timeline.

Sampled, to fit in a few minutes on 2 cores: the last FULL_DAYS days are fed at full volume (enough to
fill the IDS share of the budget: the final state is what five full years leave), the days before at
1/event_thin of the events and 1/alert_thin of the alerts, and before the last daily_days days a step is
up to a week (never across a month start). The table says so. The budget is the default
(`storage.max_db_mb` 2048, `ids.max_db_mb` 1024). Set MAMORI_BENCH_FULL_DAYS / MAMORI_BENCH_YEARS to change;
MAMORI_BENCH_KEEP=<dir> keeps the final state directory there (to profile the pages against it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

TARGET_MS = 200.0


def run() -> list[tuple[str, str, str]]:
    from appliance.retention import MB
    from lab.years import Volume, simulate

    years = int(os.environ.get("MAMORI_BENCH_YEARS", "5"))
    volume = Volume(full_days=int(os.environ.get("MAMORI_BENCH_FULL_DAYS", "8")))
    keep = os.environ.get("MAMORI_BENCH_KEEP")
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mamori-bench-retention-"))
    try:
        started = time.monotonic()
        sim, res = simulate(tmp, volume, years)
        total_s = time.monotonic() - started
        budget = sim.cfg.storage.max_db_mb * MB
        file_mb = sim.paths.db.stat().st_size / MB
        with sim.db.connection() as conn:
            kept_events = conn.execute("SELECT count(*) FROM ids_events").fetchone()[0]
            kept_alerts = conn.execute("SELECT count(*) FROM ids_alerts").fetchone()[0]
        dash, listing = _page_times(sim.ctx)
        b = budget / MB
        v = volume
        return [
            (f"retention: simulated {res.days} days ({years} y); last {v.full_days} at full volume",
             f"{res.events:,} events, {res.alerts:,} alerts fed",
             f"earlier: 1/{v.event_thin} of events, 1/{v.alert_thin} of alerts, up to a week per step before the last {v.daily_days} days"),
            ("retention: run time (ingestion and retention)", f"{total_s:.0f} s",
             f"{res.retention_runs} retention runs: {res.retention_s:.0f} s, worst {res.worst_retention_s:.1f} s"),
            ("retention: DB file at the end / budget", f"{file_mb:.0f} MB / {b:.0f} MB", f"ratio {file_mb / b:.2f} ≤ 1"),
            ("retention: peak pages in use before a run / budget", f"{res.peak_used / MB:.0f} MB",
             f"ratio {res.peak_used / budget:.2f} ≤ 1"),
            ("retention: kept at the end", f"{kept_events:,} events, {kept_alerts:,} alerts", "info"),
            ("retention: dashboard p95 at the end", f"{dash:.1f} ms", f"ratio {dash / TARGET_MS:.2f} ≤ 1"),
            ("retention: alert list p95 at the end", f"{listing:.1f} ms", f"ratio {listing / TARGET_MS:.2f} ≤ 1"),
        ]  # fmt: skip
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def signed_in_client(ctx):  # type: ignore[no-untyped-def]
    """A test client of the real web UI app with an admin session (TOTP enrolled)."""
    import pyotp

    from webui import create_app
    from webui.accounts import AccountStore

    app = create_app(ctx, subsystems=[], confirm_seconds=None)
    AccountStore(ctx.db).create("bench", "Bench-Mark-Password-1", "admin", totp_secret=pyotp.random_base32())
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["sid"] = AccountStore(ctx.db).open_session("bench", "127.0.0.1")
    return client


def _page_times(ctx) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from bench.bench_webui import _p95

    client = signed_in_client(ctx)
    client.get("/")
    return _p95(client, "/", 40), _p95(client, "/alerts/", 40)


if __name__ == "__main__":
    for row in run():
        print(*row, sep="\t")
