"""Opening hours in Japan time -> UTC windows for `meta day` / `meta hour` (0 = Sunday)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import appliance.config  # noqa: F401  (loads the model package in its own order)
from firewall.model import Schedule
from firewall.schedule import is_open, windows

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat"]


def _utc(day: int, hh: int, mm: int = 0) -> tuple[int, int]:
    return day, hh * 3600 + mm * 60


@pytest.mark.parametrize(
    ("days", "start", "end", "tz", "utc_moment", "open_"),
    [
        # 診療時間 Mon-Sat 08:00-19:00 JST
        (WEEKDAYS, "08:00", "19:00", "Asia/Tokyo", _utc(0, 23, 30), True),  # Mon 08:30 JST
        (WEEKDAYS, "08:00", "19:00", "Asia/Tokyo", _utc(0, 22, 59), False),  # Mon 07:59 JST
        (WEEKDAYS, "08:00", "19:00", "Asia/Tokyo", _utc(6, 9, 59), True),  # Sat 18:59 JST
        (WEEKDAYS, "08:00", "19:00", "Asia/Tokyo", _utc(6, 10, 0), False),  # Sat 19:00 JST: closed
        (WEEKDAYS, "08:00", "19:00", "Asia/Tokyo", _utc(0, 1, 0), False),  # Sun 10:00 JST
        (WEEKDAYS, "08:00", "19:00", "Asia/Tokyo", _utc(6, 23, 30), False),  # Sun 08:30 JST
        # overnight span, UTC
        (["fri"], "22:00", "06:00", "UTC", _utc(5, 23), True),
        (["fri"], "22:00", "06:00", "UTC", _utc(6, 5, 59), True),
        (["fri"], "22:00", "06:00", "UTC", _utc(6, 6, 0), False),
        (["fri"], "22:00", "06:00", "UTC", _utc(4, 23), False),
        # Sunday early morning JST wraps to Saturday UTC
        (["sun"], "00:00", "02:00", "Asia/Tokyo", _utc(6, 15, 30), True),
        (["sun"], "00:00", "02:00", "Asia/Tokyo", _utc(0, 15, 30), False),
    ],
)
def test_windows(
    days: list[str], start: str, end: str, tz: str, utc_moment: tuple[int, int], open_: bool
) -> None:
    assert is_open(windows(days, start, end, tz), *utc_moment) is open_


def test_days_sharing_hours_are_merged() -> None:
    wins = windows(WEEKDAYS, "08:00", "19:00", "Asia/Tokyo")
    assert [(w.days, w.start_s, w.end_s) for w in wins] == [
        ((1, 2, 3, 4, 5, 6), 0, 10 * 3600 - 1),
        ((0, 1, 2, 3, 4, 5), 23 * 3600, 86399),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x", "days": [], "start": "08:00", "end": "19:00"},
        {"name": "x", "days": ["mon"], "start": "25:00", "end": "19:00"},
        {"name": "x", "days": ["monday"], "start": "08:00", "end": "19:00"},
        {"name": "x", "days": ["mon"], "start": "8:00", "end": "19:00"},
    ],
)
def test_invalid_schedules_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Schedule.model_validate(bad)
