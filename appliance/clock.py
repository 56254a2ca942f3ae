"""The box's one clock: where product code asks what time it is, and how a time is shown to a person.

Three kinds of time, never mixed:
- **wall time** (`wall()`, `utc_now()`): seconds since the epoch, UTC. Stored in the database, compared with
  deadlines that a person set (a vendor window ends at 17:00), sent to other machines. It can jump: a
  Raspberry Pi has no battery clock and boots at its last saved time until NTP steps it.
- **monotonic time** (`monotonic()`): for durations inside one process (back-off, timeouts, "ran for 3 s").
  Never stored, never compared across a restart; it does not jump when the wall clock is stepped.
- **clinic time** (`clinic_time()`, `show()`): wall time converted to the clinic's zone (`clinic.timezone`,
  Asia/Tokyo) only where a person reads it or a clinic day/month is meant (monthly report, windows, digests).

Classes that need "now" take a `clock: Callable[[], float] = wall` argument so a test can pass its own; the
whole test run can also be sent to another moment (MAMORI_TEST_NOW, tests/conftest.py), which moves
`time.time` and so `wall()` as well. Nothing here reads the process's local zone (TZ): a box without TZ is
UTC, and a person at the clinic reads Japanese time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Tokyo"
Clock = Callable[[], float]


def wall() -> float:
    """Wall time, seconds since the epoch (UTC)."""
    return time.time()


def monotonic() -> float:
    """Seconds on a clock that never jumps: for durations only."""
    return time.monotonic()


def utc_now() -> dt.datetime:
    """Wall time as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(wall(), dt.UTC)


@lru_cache(maxsize=16)
def zone(name: str | None = None) -> ZoneInfo:
    """The clinic's zone by name (default Asia/Tokyo); cached, as zoneinfo lookups read files."""
    return ZoneInfo(name or DEFAULT_ZONE)


def clinic_time(ts: float | None = None, tz: str | None = None) -> dt.datetime:
    """`ts` (default: now) as an aware datetime in the clinic's zone."""
    return dt.datetime.fromtimestamp(wall() if ts is None else ts, zone(tz))


def show(ts: float | None, tz: str | None = None, fmt: str = "%Y/%m/%d %H:%M", empty: str = "-") -> str:
    """A time for a person to read, in the clinic's zone; `empty` where there is no time."""
    if not ts:
        return empty
    return clinic_time(ts, tz).strftime(fmt)
