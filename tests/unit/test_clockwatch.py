"""Clock steps on a running box (appliance.clockwatch): noticed on a fake wall/monotonic pair, audited, shown in
Japanese, and handed to the areas, whose durations keep the time they had left."""

from __future__ import annotations

import pytest

from appliance import clockwatch
from appliance.audit import AuditLog
from appliance.clockwatch import ClockWatch, current_notice, step_between
from appliance.daemon import clock_step_handlers
from appliance.subsystem import Context

HOUR = 3600.0


class FakeClocks:
    """A wall clock that can be stepped and a monotonic clock that only runs on."""

    def __init__(self, wall: float) -> None:
        self.w, self.m = wall, 1000.0

    def run(self, seconds: float) -> None:
        self.w += seconds
        self.m += seconds

    def step(self, seconds: float) -> None:
        self.w += seconds

    def wall(self) -> float:
        return self.w

    def mono(self) -> float:
        return self.m


@pytest.mark.parametrize(
    ("dwall", "dmono", "step"),
    [
        (1.0, 1.0, None),  # runs on
        (1.02, 1.0, None),  # NTP slewing
        (29.0, 1.0, None),  # under the threshold
        (2 * HOUR + 1, 1.0, 2 * HOUR),  # NTP steps a late Pi forward
        (-HOUR + 1, 1.0, -HOUR),  # a bad source steps it back
        (1.0, 120.0, -119.0),  # the wall clock stood still while time passed
    ],
)
def test_a_step_is_the_wall_clock_moving_apart_from_the_monotonic_clock(dwall, dmono, step) -> None:
    assert step_between(5000.0, 100.0, 5000.0 + dwall, 100.0 + dmono) == step


def _block(ctx: Context, ip: str, expires_at: float | None) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO fw_entries(kind, ip, reason, source, created_at, expires_at) VALUES ('block', ?, '', 'cli', 0, ?)",
            (ip, expires_at),
        )


def _session(ctx: Context, user: str, expires: float, ended: float | None = None) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO vpn_sessions(user, tunnel_ip, started, expires, ended) VALUES (?, '10.8.0.2', 0, ?, ?)",
            (user, expires, ended),
        )


def _left(ctx: Context, sql: str, now: float) -> list[float]:
    with ctx.db.connection() as conn:
        return [round(r[0] - now) for r in conn.execute(sql)]


@pytest.mark.parametrize("delta", [3 * HOUR, -3 * HOUR, 90 * 86400])
def test_durations_keep_the_time_they_had_left_across_a_step(ctx: Context, delta: float) -> None:
    clocks = FakeClocks(2_000_000_000.0)
    t0 = clocks.wall()
    _block(ctx, "203.0.113.66", t0 + 2 * HOUR)  # 2 h left
    _block(ctx, "203.0.113.67", None)  # until removed
    _block(ctx, "203.0.113.68", t0 - 60)  # already over: stays over
    _session(ctx, "dr-sato", t0 + HOUR)  # 1 h left
    _session(ctx, "dr-old", t0 - 10, ended=t0 - 10)  # ended: history, never moved
    watch = ClockWatch(ctx, clock_step_handlers(), wall=clocks.wall, mono=clocks.mono)
    watch.tick()
    clocks.run(1)
    clocks.step(delta)
    notice = watch.tick()
    assert notice is not None and notice.kind == "step" and round(notice.delta) == delta
    now = clocks.wall()
    blocks = _left(ctx, "SELECT expires_at FROM fw_entries WHERE expires_at IS NOT NULL ORDER BY ip", now)
    assert blocks == [2 * HOUR - 1, round(-60 - 1 - delta)]
    assert _left(ctx, "SELECT expires FROM vpn_sessions WHERE ended IS NULL", now) == [HOUR - 1]
    assert _left(ctx, "SELECT expires FROM vpn_sessions WHERE ended IS NOT NULL", t0) == [-10]
    entry = AuditLog(ctx.db).search("clock.step", limit=5)[0]
    detail = entry.detail
    assert entry.action == "clock.step" and round(detail["delta"]) == delta
    assert detail["moved"] == {"firewall.clockstep": 1, "vpn.clockstep": 1, "webui.clockstep": 0}
    assert AuditLog(ctx.db).verify().ok


def test_a_clock_that_runs_on_is_never_a_step(ctx: Context) -> None:
    clocks = FakeClocks(2_000_000_000.0)
    watch = ClockWatch(ctx, clock_step_handlers(), wall=clocks.wall, mono=clocks.mono)
    for _ in range(100):
        assert watch.tick() is None
        clocks.run(1.0005)
    assert AuditLog(ctx.db).search("clock.step", limit=5) == []
    assert current_notice(ctx, clocks.wall()) is None


def test_the_notice_is_plain_japanese_and_fades_after_a_few_days(ctx: Context) -> None:
    clocks = FakeClocks(2_000_000_000.0)
    watch = ClockWatch(ctx, (), wall=clocks.wall, mono=clocks.mono)
    watch.tick()
    clocks.step(-2 * HOUR)
    watch.tick()
    notice = current_notice(ctx, clocks.wall())
    assert notice is not None
    assert (
        "時計が 2 時間 戻りました" in notice.text_ja("Asia/Tokyo")
        and "残り時間はそのまま" in notice.text_ja()
    )
    assert "stepped back by 7200 s" in notice.text_en()
    assert current_notice(ctx, clocks.wall() + 4 * 86400) is None


def test_a_box_that_starts_behind_the_time_it_saw_says_so_until_ntp_steps_it(ctx: Context) -> None:
    clocks = FakeClocks(2_000_000_000.0)
    running = ClockWatch(ctx, (), wall=clocks.wall, mono=clocks.mono)
    running.tick()  # saves the wall time it saw
    clocks.w = 1_900_000_000.0  # power cut; the Pi comes back at an old saved time
    restarted = ClockWatch(ctx, (), wall=clocks.wall, mono=clocks.mono)
    notice = restarted.check_start()
    assert notice is not None and notice.kind == "behind" and notice.delta < 0
    assert "遅れていました" in current_notice(ctx, clocks.wall()).text_ja()
    assert AuditLog(ctx.db).search("clock.behind", limit=5)[0].action == "clock.behind"
    restarted.tick()
    clocks.run(1)
    clocks.step(100_000_000.0)  # NTP reaches a server
    restarted.tick()
    assert current_notice(ctx, clocks.wall()).kind == "step"
    assert ClockWatch(ctx, (), wall=clocks.wall, mono=clocks.mono).check_start() is None


def test_a_handler_that_fails_does_not_stop_the_others(ctx: Context) -> None:
    def broken(_ctx: Context, _before: float, _delta: float) -> int:
        raise RuntimeError("boom")

    clocks = FakeClocks(2_000_000_000.0)
    _block(ctx, "203.0.113.66", clocks.wall() + HOUR)
    watch = ClockWatch(ctx, [("broken", broken), *clock_step_handlers()], wall=clocks.wall, mono=clocks.mono)
    watch.tick()
    clocks.step(HOUR)
    watch.tick()
    detail = AuditLog(ctx.db).search("clock.step", limit=1)[0].detail
    assert detail["moved"]["broken"] == -1 and detail["moved"]["firewall.clockstep"] == 1


def test_settle_lets_any_worker_handle_a_step_before_it_compares_deadlines(ctx: Context) -> None:
    clocks = FakeClocks(2_000_000_000.0)
    _session(ctx, "dr-sato", clocks.wall() + HOUR)
    watch = ClockWatch(ctx, clock_step_handlers(), wall=clocks.wall, mono=clocks.mono)
    watch.tick()
    clockwatch._installed = watch
    try:
        clocks.step(5 * HOUR)
        clockwatch.settle()  # what vpn-expiry calls before it ends sessions past their time
    finally:
        clockwatch._installed = None
    assert _left(ctx, "SELECT expires FROM vpn_sessions WHERE ended IS NULL", clocks.wall()) == [HOUR]
    clockwatch.settle()  # outside the daemon: nothing to do, no error


def test_a_web_session_survives_a_forward_step_and_is_not_lengthened_by_a_step_back(ctx: Context) -> None:
    from webui.accounts import AccountStore

    clocks = FakeClocks(2_000_000_000.0)
    store = AccountStore(ctx.db, clock=clocks.wall)
    store.create("inchou", "ながい合言葉で守る-2 horse battery", "viewer")
    sid = store.open_session("inchou", "192.168.10.20")
    watch = ClockWatch(ctx, clock_step_handlers(), wall=clocks.wall, mono=clocks.mono)
    watch.tick()
    clocks.run(60)
    clocks.step(6 * HOUR)  # NTP catches up: not a reason to sign the doctor's receptionist out
    watch.tick()
    assert store.touch_session(sid, idle_seconds=1800) is not None
    clocks.run(60)
    clocks.step(-6 * HOUR)
    watch.tick()
    clocks.run(1801)  # idle for longer than allowed: the step back bought no extra time
    assert store.touch_session(sid, idle_seconds=1800) is None
