"""Clock steps on a running box: noticed, written down, and kept from changing what durations mean.

A Raspberry Pi has no battery clock: it boots at its last saved time (or 1970) and NTP steps the wall clock
forward by hours or months once it reaches a server; a bad time source can step it back. Monotonic time never
jumps, so a step shows as the wall clock moving more (or less) than the monotonic clock over one tick.

What the box does about a step of `delta` seconds:
- **Deadlines that are durations** (a doctor's VPN session lasts 12 h, a block lasts 24 h) keep the time they had
  left: each area that stores such a deadline in wall time moves it by `delta` (its `on_clock_step` hook, listed in
  `appliance.daemon`). So a step back never prolongs a session or a block, and a step forward never expires them all
  at once. The kernel's own set timeouts run on monotonic time and need nothing.
- **Appointments** that a person made in clinic time (a vendor window 14:00–17:00) stay where they are: the new
  time is the right one. A window that the box has already closed stays closed (`vpn.windows`), so a step back
  never re-opens it.
- **Schedules** (backups, reports, rule updates) fire at most once for all the runs a forward step skipped, and a
  step back does not repeat a run already made (each scheduler keeps the last period it ran).
- The step is written to the audit log (`clock.step`, with the times before and after) and kept as a notice that
  the dashboard and `mamori status` show in Japanese.

At start the daemon also compares the wall clock with the last time it saved (every minute): a box that booted
with its clock behind the time it had already seen says so (`clock.behind`) until the clock is right again.
Non-goal: choosing between time sources (chrony does that, timesvc) or refusing to run with a wrong clock.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance import clock
from appliance.audit import audit_log
from appliance.storage import Database
from appliance.subsystem import Context

log = logging.getLogger(__name__)

STEP_THRESHOLD_S = 30.0  # NTP slews at most 0.5 ms/s: a 30 s difference within one tick is a step
TICK_S = 1.0
SAVE_EVERY_S = 60.0
NOTICE_DAYS = 3
LAST_WALL_KEY = "clock.last_wall"
LAST_STEP_KEY = "clock.last_step"
BEHIND_KEY = "clock.behind"

StepHandler = Callable[[Context, float, float], int]
"""An area's hook `(ctx, before, delta)`: move the wall-time deadlines still running at `before` (the wall time just
before the step) by `delta` seconds; returns how many it moved."""


@dataclass(frozen=True)
class ClockNotice:
    """What the dashboard and the CLI say about the clock."""

    kind: str  # "step" or "behind"
    at: float  # wall time when it was noticed (after the step)
    delta: float  # seconds; positive: the clock went forward

    def text_ja(self, tz: str | None = None) -> str:
        amount = _amount_ja(abs(self.delta))
        when = clock.show(self.at, tz)
        if self.kind == "behind":
            return (
                f"起動時の時計が前回より {amount} 遅れていました（{when}）。時刻合わせ（NTP）ができるまで、"
                "記録の時刻が正しくないことがあります。"
            )
        way = "進みました" if self.delta > 0 else "戻りました"
        return f"{when} に時計が {amount} {way}（時刻合わせによる修正）。接続や遮断の残り時間はそのまま保っています。"

    def text_en(self, tz: str | None = None) -> str:
        when = clock.show(self.at, tz)
        if self.kind == "behind":
            return f"at start the clock was {abs(self.delta):.0f} s behind the last time saved ({when})"
        way = "forward" if self.delta > 0 else "back"
        return f"the clock was stepped {way} by {abs(self.delta):.0f} s at {when}; remaining durations kept"


def _amount_ja(seconds: float) -> str:
    """About how much, in the unit a person would use (a step measured over one tick is a little off)."""
    minutes = round(seconds / 60)
    if minutes >= 2 * 1440:
        return f"{round(minutes / 1440)} 日"
    if minutes >= 120:
        return f"{round(minutes / 60)} 時間"
    if minutes >= 2:
        return f"{minutes} 分"
    return f"{round(seconds)} 秒"


def step_between(prev_wall: float, prev_mono: float, wall: float, mono: float) -> float | None:
    """The step the wall clock made between two readings, or None if it just ran on (within the threshold)."""
    drift = (wall - prev_wall) - (mono - prev_mono)
    return drift if abs(drift) >= STEP_THRESHOLD_S else None


def current_notice(ctx: Context, now: float | None = None) -> ClockNotice | None:
    """The clock notice to show now: a step or a late start within the last few days, newest first."""
    t = clock.wall() if now is None else now
    notices = []
    for key in (LAST_STEP_KEY, BEHIND_KEY):
        raw = ctx.db.get_kv(key)
        if raw:
            data = json.loads(raw)
            notices.append(ClockNotice(data["kind"], data["at"], data["delta"]))
    fresh = [n for n in notices if 0 <= t - n.at <= NOTICE_DAYS * 86400]
    return max(fresh, key=lambda n: n.at) if fresh else None


def ages_trusted(db: Database, now: float | None = None, within_days: float = 7) -> bool:
    """False while a forward step of more than a day is recent: deleting records "older than N days" should wait.

    A Pi whose clock NTP carried forward by days is fine to wait a week; a spoofed time source that throws the
    clock years ahead must not make retention delete years of the audit log at its next run. (The budget in
    bytes still holds meanwhile; authenticated time, NTS, is the real cure.)"""
    t = clock.wall() if now is None else now
    raw = db.get_kv(LAST_STEP_KEY)
    if not raw:
        return True
    data = json.loads(raw)
    return not (data["delta"] > 86400 and 0 <= t - data["at"] <= within_days * 86400)


class ClockWatch:
    """A daemon worker: one reading per tick; a step is audited, kept as a notice and handed to the areas."""

    name = "clock-watch"

    def __init__(
        self,
        ctx: Context,
        handlers: Sequence[tuple[str, StepHandler]] = (),
        wall: clock.Clock = clock.wall,
        mono: clock.Clock = clock.monotonic,
    ) -> None:
        self.ctx, self.handlers, self.wall, self.mono = ctx, handlers, wall, mono
        self.audit = audit_log(ctx)
        self._prev: tuple[float, float] | None = None
        self._saved_mono = float("-inf")
        self._lock = threading.Lock()

    def check_start(self) -> ClockNotice | None:
        """At daemon start: is the wall clock behind the last time this box saved? (No battery clock.)"""
        now = self.wall()
        raw = self.ctx.db.get_kv(LAST_WALL_KEY)
        if raw is None or now >= float(raw) - STEP_THRESHOLD_S:
            return None
        notice = ClockNotice("behind", now, now - float(raw))
        self.audit.record("mamori", "clock.behind", {"now": now, "last_saved": float(raw)}, source="clock")
        self.ctx.db.set_kv(BEHIND_KEY, json.dumps(notice.__dict__))
        log.warning("the wall clock is %.0f s behind the last time saved", -notice.delta)
        return notice

    def tick(self) -> ClockNotice | None:
        """Take one reading; handle a step if there was one since the last reading (any thread may call it:
        the first to see a step handles it, under the lock, before it goes on comparing deadlines)."""
        with self._lock:
            wall, mono = self.wall(), self.mono()
            prev, self._prev = self._prev, (wall, mono)
            delta = step_between(*prev, wall, mono) if prev else None
            notice = self._handle(wall, delta) if delta is not None else None
            if mono - self._saved_mono >= SAVE_EVERY_S or notice is not None:
                # Only raised while the clock runs on; a step back seen while running is the clock being put
                # right, so the mark a late start is compared with follows it down.
                raw = self.ctx.db.get_kv(LAST_WALL_KEY)
                if raw is None or wall > float(raw) or (notice is not None and notice.delta < 0):
                    self.ctx.db.set_kv(LAST_WALL_KEY, repr(wall))
                self._saved_mono = mono
            return notice

    def _handle(self, wall: float, delta: float) -> ClockNotice:
        moved = {}
        for name, handler in self.handlers:
            try:
                moved[name] = handler(self.ctx, wall - delta, delta)
            except Exception:  # one area's failure must not stop the others from keeping their durations
                log.exception("clock step: %s could not move its deadlines", name)
                moved[name] = -1
        notice = ClockNotice("step", wall, delta)
        detail = {"before": wall - delta, "after": wall, "delta": round(delta, 3), "moved": moved}
        self.audit.record("mamori", "clock.step", detail, source="clock")
        self.ctx.db.set_kv(LAST_STEP_KEY, json.dumps(notice.__dict__))
        if delta > 0:
            self.ctx.db.set_kv(BEHIND_KEY, None)  # a forward step is NTP catching up: the late start is over
        log.warning("wall clock stepped by %+.0f s; deadlines moved: %s", delta, moved)
        return notice

    def run(self, stop: threading.Event) -> None:
        global _installed
        _installed = self
        try:
            self.check_start()
            while True:
                self.tick()
                if stop.wait(TICK_S):
                    return
        finally:
            _installed = None


_installed: ClockWatch | None = None


def settle() -> None:
    """Handle a clock step now if there was one: call before comparing stored wall-time deadlines with now.

    A worker that ends sessions at their deadline (vpn-expiry) would otherwise race the clock watch after a
    forward step and end them all before their deadlines moved. Does nothing outside the daemon."""
    watch = _installed
    if watch is not None:
        watch.tick()
