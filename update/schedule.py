"""Quiet hours in clinic time: is now inside them, and when do they next begin (for 「今夜 02:00 に更新」).

A window may cross midnight ("23:30-01:00"). Times are the clinic's wall clock (appliance.clock.clinic_time),
so a day with a DST change (only in a UTC-configured box… UTC has none) cannot shift them; Asia/Tokyo has no DST.
"""

from __future__ import annotations

import datetime as dt

from appliance.clock import clinic_time


def _window(spec: str) -> tuple[dt.time, dt.time]:
    start, end = spec.split("-")
    return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


def in_quiet_hours(spec: str, ts: float, tz: str | None = None) -> bool:
    start, end = _window(spec)
    now = clinic_time(ts, tz).time().replace(second=0, microsecond=0)
    if start < end:
        return start <= now < end
    return now >= start or now < end  # across midnight


def next_quiet_start(spec: str, ts: float, tz: str | None = None) -> float:
    """The next moment the quiet hours begin, strictly after `ts` (epoch seconds)."""
    start, _ = _window(spec)
    local = clinic_time(ts, tz)
    candidate = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if candidate.timestamp() <= ts:
        candidate = (local + dt.timedelta(days=1)).replace(hour=start.hour, minute=start.minute, second=0,
                                                           microsecond=0)  # fmt: skip
    return candidate.timestamp()


def utc_iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
