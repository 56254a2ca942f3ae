"""The tunnel monitor's worker: retention of its log (vpn_peer_log, by age and by row count), and no
session records from a config apply or rollback."""

from __future__ import annotations

import threading
import time

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.waiting import wait_or_fail
from vpn import monitor
from vpn.keys import generate_keypair
from vpn.monitor import HANDSHAKE_GAP_S, LogEntry, MonitorWorker, cap_peer_log, peer_log, record
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
    ("stamps", "max_rows", "left"),
    [
        ([NOW - i for i in range(10)], 4, 4),  # the newest stay
        ([NOW - 500 * DAY] + [NOW - i for i in range(6)], 3, 3),  # age does not matter here
        ([NOW - 500 * DAY, NOW], 100, 2),  # under the cap: nothing goes, however old (the coordinator's)
        ([], 100, 0),
    ],
)
def test_the_row_cap_keeps_the_newest(ctx, stamps, max_rows, left):
    fill(ctx, stamps)
    gone = cap_peer_log(ctx, max_rows=max_rows)
    assert gone == len(stamps) - left and count(ctx) == left
    kept = sorted(e.ts for e in peer_log(ctx, limit=1000))
    assert kept == sorted(stamps)[len(stamps) - left :]  # always the newest


def test_monitor_worker_caps_at_start_and_not_again_within_the_hour(ctx, monkeypatch):
    monkeypatch.setattr(monitor, "cap_peer_log", lambda c: cap_peer_log(c, max_rows=5))
    fill(ctx, [NOW - 500 * DAY] + [NOW - i for i in range(8)])
    worker = MonitorWorker(ctx, WgInterface("mamori-nonexist"), interval=0.01, clock=lambda: NOW)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        # A long bound, ended by the cap: CI runs this at nice 19 beside the integration tests.
        wait_or_fail(lambda: count(ctx) == 5, 60, "the monitor capped the peer log at start", step=0.01)
        fill(ctx, [NOW + 1, NOW + 2])
        stop.wait(0.1)
        assert count(ctx) == 7  # not again within the hour (measured on the monotonic clock)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the monitor did not stop within 60 s of being asked"
    worker.capped_at = time.monotonic() - monitor.CAP_EVERY_S  # an hour later
    assert worker.maintain() == 2 and count(ctx) == 5


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
