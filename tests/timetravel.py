"""Helpers for tests that run under MAMORI_TEST_NOW (tests/conftest.py moves this process's wall clock).

Code in C libraries that reads the clock itself, OpenSSL's certificate check above all, still sees the real
time; a test certificate must therefore be valid at both moments, the shifted one and the real one.
"""

from __future__ import annotations

import datetime as dt

from time_machine import escape_hatch


def real_now() -> dt.datetime:
    """The machine's real time, even while time-machine has moved this process's clock."""
    if escape_hatch.is_travelling():
        return dt.datetime.fromtimestamp(escape_hatch.time.time(), dt.UTC)
    return dt.datetime.now(dt.UTC)


def validity_window(margin: dt.timedelta = dt.timedelta(days=1)) -> tuple[dt.datetime, dt.datetime]:
    """(not_before, not_after) of a test certificate that both this process and OpenSSL accept."""
    moments = (dt.datetime.now(dt.UTC), real_now())
    return min(moments) - margin, max(moments) + margin


JST = dt.timezone(dt.timedelta(hours=9), "JST")


def next_jst(hour: int, minute: int = 0, days_ahead: int = 1) -> float:
    """The epoch time of hour:minute in Tokyo, `days_ahead` calendar days after today's JST date."""
    day = dt.datetime.now(JST).date() + dt.timedelta(days=days_ahead)
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST).timestamp()
