"""Who may sign in to the VPN portal, when, and for how long. Pure: the time and the window are passed in.

Rules, in the order they are checked (the first that fails is the reason shown):
  the user exists in the config and is enabled -> a vendor needs an open maintenance window ->
  the time is inside the user's access hours (box-local) -> password + TOTP (vpn/credentials.py).
A session lasts `session_hours`, but never beyond the vendor's window or the end of today's hours.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import appliance.config  # noqa: F401 - load the config package before vpn.model (import cycle)
from vpn.model import Hours, VpnUser
from vpn.windows import Window

# reason code -> (ja, en): what the portal shows. Codes are stable; the audit log stores the code.
REASONS: dict[str, tuple[str, str]] = {
    "ok": ("サインインしました", "signed in"),
    "unknown_device": ("この端末は登録されていません", "this device is not registered"),
    "unknown": ("パスワードまたは確認コードが違います", "wrong password or code"),
    "bad": ("パスワードまたは確認コードが違います", "wrong password or code"),
    "disabled": (
        "この利用者は停止されています。医院にお問い合わせください",
        "this user is disabled; contact the clinic",
    ),
    "locked": (
        "失敗が続いたため一時的にロックしました。しばらくしてからお試しください",
        "too many failures; locked for a while",
    ),
    "no_window": (
        "保守の時間枠が承認されていません。医院に承認を依頼してください",
        "no approved maintenance window; ask the clinic to approve one",
    ),
    "outside_hours": ("利用できる時間外です", "outside your access hours"),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    expires: float = 0.0

    def text(self, lang: str = "ja") -> str:
        ja, en = REASONS.get(self.reason, (self.reason, self.reason))
        return en if lang == "en" else ja


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def hours_end(hours: Hours | None, now: float, tz: str) -> float | None:
    """When today's access hours end, if `now` is inside them; None if outside. No hours = always."""
    if hours is None:
        return float("inf")
    local = dt.datetime.fromtimestamp(now, ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    start, end = _minutes(hours.start), _minutes(hours.end)
    if start == end:
        return float("inf")
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end_day = midnight + dt.timedelta(minutes=end)
    if end_day <= local:
        end_day += dt.timedelta(days=1)
    return end_day.timestamp()


def decide(user: VpnUser | None, now: float, tz: str, window: Window | None) -> Decision:
    """Everything except the credentials: may this user start a session now, and until when?"""
    if user is None:
        return Decision(False, "unknown_device")
    if not user.enabled:
        return Decision(False, "disabled")
    limit = now + user.session_hours * 3600
    if user.role == "vendor":
        if window is None or not window.open_at(now):
            return Decision(False, "no_window")
        limit = min(limit, window.ends)
    end = hours_end(user.hours, now, tz)
    if end is None:
        return Decision(False, "outside_hours")
    return Decision(True, "ok", min(limit, end))
