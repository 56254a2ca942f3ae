"""Who may sign in when: access hours (box-local, across midnight), vendor windows, session length."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

import appliance.config  # noqa: F401 - before vpn.model (import cycle)
from appliance.storage import Database
from vpn.model import Hours, VpnUser
from vpn.policy import REASONS, decide, hours_end
from vpn.windows import WindowError, WindowStore

JST = ZoneInfo("Asia/Tokyo")


def at(hhmm: str, day: int = 26) -> float:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime(2026, 11, day, h, m, tzinfo=JST).timestamp()


@pytest.mark.parametrize(
    "start, end, now, inside",
    [
        ("07:00", "23:00", "06:59", False),
        ("07:00", "23:00", "07:00", True),
        ("07:00", "23:00", "22:59", True),
        ("07:00", "23:00", "23:00", False),
        ("22:00", "06:00", "23:30", True),  # night shift across midnight
        ("22:00", "06:00", "05:59", True),
        ("22:00", "06:00", "12:00", False),
    ],
)
def test_hours_table(start, end, now, inside):
    assert (hours_end(Hours(start=start, end=end), at(now), "Asia/Tokyo") is not None) is inside


def test_hours_end_is_today_or_tomorrow():
    assert hours_end(Hours(start="07:00", end="23:00"), at("08:00"), "Asia/Tokyo") == at("23:00")
    assert hours_end(Hours(start="22:00", end="06:00"), at("23:00"), "Asia/Tokyo") == at("06:00", 27)
    assert hours_end(None, at("03:00"), "Asia/Tokyo") == float("inf")


DOCTOR = VpnUser(name="yamada", role="doctor", hours=Hours(start="07:00", end="23:00"), session_hours=8)
VENDOR = VpnUser(name="vendor-a", role="vendor", session_hours=2)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def windows(tmp_path):
    db = Database(tmp_path / "m.db")
    db.migrate()
    return WindowStore(db, Clock(at("09:00")))


def test_doctor_session_capped_by_hours():
    assert decide(DOCTOR, at("09:00"), "Asia/Tokyo", None).expires == at("17:00")
    assert decide(DOCTOR, at("20:00"), "Asia/Tokyo", None).expires == at("23:00")
    refused = decide(DOCTOR, at("23:30"), "Asia/Tokyo", None)
    assert (refused.allowed, refused.reason) == (False, "outside_hours")
    assert "時間外" in refused.text("ja") and refused.text("en") == "outside your access hours"


def test_unknown_and_disabled():
    assert decide(None, at("09:00"), "Asia/Tokyo", None).reason == "unknown_device"
    off = VpnUser(name="x", role="staff", enabled=False)
    assert decide(off, at("09:00"), "Asia/Tokyo", None).reason == "disabled"
    assert set(REASONS) >= {"ok", "bad", "locked", "no_window", "outside_hours", "disabled", "unknown_device"}


def test_vendor_only_inside_window(windows):
    assert decide(VENDOR, at("09:00"), "Asia/Tokyo", None).reason == "no_window"
    w = windows.approve_next("vendor-a", 1, "電子カルテ更新", ["電子カルテ"], "院長")
    assert windows.open_for("vendor-a", at("09:30")).id == w.id
    d = decide(VENDOR, at("09:30"), "Asia/Tokyo", windows.open_for("vendor-a", at("09:30")))
    assert d.allowed and d.expires == at("10:00")  # the window's end, not session_hours
    assert windows.open_for("vendor-a", at("10:00")) is None
    assert decide(VENDOR, at("10:00"), "Asia/Tokyo", w).reason == "no_window"
    assert [x.id for x in windows.due_to_close(at("10:00"))] == [w.id]
    assert windows.due_to_close(at("09:59")) == []
    windows.mark_closed(w.id)
    assert windows.due_to_close(at("10:00")) == []


def test_cancelled_window_closes_at_once(windows):
    w = windows.approve("vendor-a", at("09:00"), at("12:00"), "保守", ["PACS"], "院長")
    windows.cancel(w.id)
    assert windows.open_for("vendor-a", at("10:00")) is None
    assert [x.id for x in windows.due_to_close(at("10:00"))] == [w.id]


@pytest.mark.parametrize(
    "starts, ends, reason, targets",
    [
        ("10:00", "09:30", "保守", ["PACS"]),  # ends before start
        ("08:00", "08:30", "保守", ["PACS"]),  # already over
        ("10:00", "11:00", "", ["PACS"]),  # no reason
        ("10:00", "11:00", "保守", []),  # no target
    ],
)
def test_window_validation_table(windows, starts, ends, reason, targets):
    with pytest.raises(WindowError):
        windows.approve("vendor-a", at(starts), at(ends), reason, targets, "院長")


def test_window_longer_than_a_day_refused(windows):
    with pytest.raises(WindowError):
        windows.approve("vendor-a", at("10:00"), at("10:01", 27), "保守", ["PACS"], "院長")


def test_a_window_the_box_closed_stays_closed_when_the_clock_steps_back(windows):
    w = windows.approve("vendor-a", at("09:00"), at("10:00"), "電子カルテ更新", ["電子カルテ"], "院長")
    windows.clock.t = at("10:00")
    assert [d.id for d in windows.due_to_close()] == [w.id]
    windows.mark_closed(w.id)
    windows.clock.t = at("09:30")  # a bad time source steps the clock back into the window
    assert windows.open_for("vendor-a") is None
    assert decide(VENDOR, at("09:30"), "Asia/Tokyo", windows.get(w.id)).reason == "no_window"
