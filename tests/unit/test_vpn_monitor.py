"""The tunnel monitor's worker: retention of its log (vpn_peer_log, by age and by row count), and no
session records from a config apply or rollback."""

from __future__ import annotations

import threading

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from vpn import monitor
from vpn.keys import generate_keypair
from vpn.monitor import HANDSHAKE_GAP_S, LogEntry, MonitorWorker, peer_log, prune_peer_log, record
from vpn.store import DeviceStore
from vpn.wg import DumpState, PeerState, WgInterface

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


def _state(key: str, handshake: float, rx: int = 0, tx: int = 0, present: bool = True) -> DumpState:
    peers = {key: PeerState(key, "198.51.100.20:41000", ("10.99.0.2/32",), int(handshake), rx, tx, None)}
    return DumpState("S", 51820, peers if present else {})


def test_apply_and_rollback_add_no_session_records(ctx):
    """The daemon rebuilds its workers at every apply and rollback: a new monitor must not take a tunnel
    that is already up (a recent handshake) for a new connection, nor log anything when the apply takes
    the peer off the interface and the rollback puts it back."""
    key = generate_keypair()[1]
    DeviceStore(ctx.db).add("vendor-a", "pc", key, "10.99.0.1/24", None)
    now = [NOW]
    clock = lambda: now[0]  # noqa: E731
    first = MonitorWorker(ctx, WgInterface("mamori-nonexist"), clock=clock)
    assert [e.kind for e in first.step(_state(key, NOW - 5, 1000, 500))] == ["connect"]
    now[0] += 10
    assert [(e.kind, e.rx) for e in first.step(_state(key, NOW + 5, 1200, 600), flush=True)] == [
        ("bytes", 200)
    ]
    rebuilt = MonitorWorker(ctx, WgInterface("mamori-nonexist"), clock=clock)  # apply: workers rebuilt
    assert rebuilt.step(_state(key, NOW + 5, 1200, 600)) == []
    idle = MonitorWorker(ctx, WgInterface("mamori-nonexist"), clock=clock)
    now[0] += HANDSHAKE_GAP_S + 10  # the vendor goes quiet: one disconnect, from whichever monitor runs
    assert [e.kind for e in idle.step(_state(key, NOW + 5, 1200, 600))] == ["disconnect"]
    now[0] += 60
    # an apply that takes the (idle) peer off and a rollback that puts it back, fresh counters and no handshake
    again = MonitorWorker(ctx, WgInterface("mamori-nonexist"), clock=clock)
    assert again.step(_state(key, 0, present=False)) == []
    assert again.step(_state(key, 0)) == []
    assert MonitorWorker(ctx, WgInterface("mamori-nonexist"), clock=clock).step(_state(key, 0)) == []
    kinds = [e.kind for e in reversed(peer_log(ctx, "vendor-a"))]
    assert kinds == ["connect", "bytes", "disconnect"]
    # a real reconnect after that is still logged
    now[0] += 30
    assert [e.kind for e in again.step(_state(key, now[0] - 1, 10, 10))] == ["connect"]
