"""Opening hours in the clinic's local time -> windows the kernel can match with `meta day` / `meta hour`.

The kernel compares `meta hour` against UTC seconds of the day, and `meta day` against the weekday in the
kernel's timezone (UTC unless someone set one with settimeofday, which Debian does not). nft converts
"HH:MM" strings from the timezone of the process that runs it, which would make the result depend on the
environment; so the renderer converts to UTC itself and emits plain seconds (nft passes integers through).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The config model allows these two; both have a fixed offset (Japan has no daylight saving time).
TZ_OFFSET_MINUTES: dict[str, int] = {"Asia/Tokyo": 540, "UTC": 0}
# nft numbering: 0 = Sunday.
DAY_NUMBER: dict[str, int] = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
ALL_DAYS: tuple[str, ...] = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY = 1440
_WEEK = 7 * _DAY


@dataclass(frozen=True)
class Window:
    """Active on UTC weekdays `days` from `start_s` to `end_s` (seconds of the UTC day, both inclusive)."""

    days: tuple[int, ...]
    start_s: int
    end_s: int


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _utc_spans(days: Iterable[str], start: str, end: str, offset: int) -> list[tuple[int, int]]:
    """Week-minute spans [a, b) in UTC; an end not after the start means the span runs past midnight."""
    s, e = _minutes(start), _minutes(end)
    length = e - s if e > s else e + _DAY - s
    spans: list[tuple[int, int]] = []
    for day in days:
        a = (DAY_NUMBER[day] * _DAY + s - offset) % _WEEK
        b = a + length
        if b <= _WEEK:
            spans.append((a, b))
        else:
            spans.extend([(a, _WEEK), (0, b - _WEEK)])
    return spans


def windows(days: Iterable[str], start: str, end: str, timezone: str) -> list[Window]:
    """Split the local schedule into per-UTC-day pieces, merging days that share the same hours."""
    by_hours: dict[tuple[int, int], set[int]] = {}
    for a, b in _utc_spans(days, start, end, TZ_OFFSET_MINUTES[timezone]):
        minute = a
        while minute < b:
            day, day_start = divmod(minute, _DAY)
            piece_end = min(b, (day + 1) * _DAY)
            key = (day_start * 60, (piece_end - day * _DAY) * 60 - 1)
            by_hours.setdefault(key, set()).add(day)
            minute = piece_end
    return [Window(tuple(sorted(d)), s, e) for (s, e), d in sorted(by_hours.items())]


def is_open(wins: list[Window], utc_weekday: int, utc_second_of_day: int) -> bool:
    """Whether the kernel would match at this UTC moment (0 = Sunday); used by tests and the web UI."""
    return any(utc_weekday in w.days and w.start_s <= utc_second_of_day <= w.end_s for w in wins)
