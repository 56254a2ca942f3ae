"""Retention of the tunnel log (vpn_peer_log): by age and by row count, run by the monitor worker."""

from __future__ import annotations

import threading

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from vpn import monitor
from vpn.monitor import LogEntry, MonitorWorker, peer_log, prune_peer_log, record
from vpn.wg import WgInterface

DAY = 86400.0
NOW = 1_790_000_000.0


@pytest.fixture()
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    return c


def fill(ctx, stamps: list[float]) -> None:
    """Written in time order, as the monitor writes them."""
    record(ctx, [LogEntry(ts, "yamada", 1, "bytes", "198.51.100.20:1", 10, 10) for ts in sorted(stamps)])


def count(ctx) -> int:
    with ctx.db.connection() as conn:
        return conn.execute("SELECT COUNT(*) FROM vpn_peer_log").fetchone()[0]


@pytest.mark.parametrize(
    ("stamps", "keep_days", "max_rows", "left"),
    [
        ([NOW - 500 * DAY, NOW - 401 * DAY, NOW - 10 * DAY, NOW], 400, 100, 2),  # by age
        ([NOW - i for i in range(10)], 400, 4, 4),  # by count: the newest stay
        ([NOW - 500 * DAY] + [NOW - i for i in range(6)], 400, 3, 3),  # both
        ([NOW - i for i in range(3)], 400, 100, 3),  # nothing to do
        ([], 400, 100, 0),
    ],
)
def test_prune_by_age_and_count(ctx, stamps, keep_days, max_rows, left):
    fill(ctx, stamps)
    gone = prune_peer_log(ctx, NOW, keep_s=keep_days * DAY, max_rows=max_rows)
    assert gone == len(stamps) - left and count(ctx) == left
    kept = sorted(e.ts for e in peer_log(ctx, limit=1000))
    assert kept == sorted(stamps)[len(stamps) - left :]  # always the newest


def test_monitor_worker_prunes_at_start_and_then_hourly(ctx, monkeypatch):
    monkeypatch.setattr(monitor, "prune_peer_log", lambda c, now: prune_peer_log(c, now, max_rows=5))
    fill(ctx, [NOW - 500 * DAY] + [NOW - i for i in range(8)])
    now = [NOW]
    worker = MonitorWorker(ctx, WgInterface("mamori-nonexist"), interval=0.01, clock=lambda: now[0])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        for _ in range(200):  # bounded: up to 2 s for the first prune
            if count(ctx) == 5:
                break
            stop.wait(0.01)
        assert count(ctx) == 5
        fill(ctx, [NOW + 1, NOW + 2])
        stop.wait(0.1)
        assert count(ctx) == 7  # not again within the hour
        now[0] += monitor.PRUNE_EVERY_S
        for _ in range(200):
            if count(ctx) == 5:
                break
            stop.wait(0.01)
        assert count(ctx) == 5
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
