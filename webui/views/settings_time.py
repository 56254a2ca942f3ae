"""設定 → 時刻: the box's clock as the clinic reads it, and whether it is synchronised.

The synchronisation state comes from the NTP area (`timesvc.status.clock_state`, read through chronyd's
socket). When it cannot be read (chronyd stopped, NTP switched off, an answer not understood) the page
says so plainly — it never shows a state it did not read.
Non-goal: changing the time or the NTP servers here (that is the config, `ntp:`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import render_template

from appliance.subsystem import Context
from webui import actions, core
from webui import context as wctx
from webui.context import requires
from webui.views.settings_bp import bp

if TYPE_CHECKING:
    from timesvc.status import ClockState

log = logging.getLogger(__name__)

ZONE_LABELS = {"Asia/Tokyo": "日本時間（Asia/Tokyo）", "UTC": "協定世界時（UTC）"}
WEEKDAYS = "月火水木金土日"
CHRONYC_TIMEOUT = 2.0  # two chronyc calls; the page must not hang on a stuck chronyd


@dataclass(frozen=True)
class ClockView:
    """What the page says about synchronisation. `kind`: synced, unsynced, stopped, disabled, unknown."""

    kind: str
    upstream: str = ""
    offset: str = ""
    offset_ok: bool = False  # under a second: nothing for the clinic to do


def read_clock(ctx: Context) -> ClockView:
    """The view of chronyd's state read in this process (root: the CLI, tests); the page asks the daemon."""
    from timesvc.status import clock_state

    return clock_view(clock_state(ctx, timeout=CHRONYC_TIMEOUT))


def asked_clock() -> ClockView:
    """chronyd's state as the daemon reads it (timesvc.web_actions): its socket is root's and _chrony's."""
    from timesvc.status import ClockState

    return clock_view(ClockState.from_dict(actions.call("time.status", actor=wctx.actor_name())["state"]))


def clock_view(state: ClockState) -> ClockView:
    from timesvc.status import format_offset_ja

    if state.problem:
        log.info("clock state: %s", state.problem)
    if not state.enabled:
        return ClockView("disabled")
    if not state.running:
        return ClockView("stopped")
    if state.synchronised:
        offset = format_offset_ja(state.offset_s) if state.offset_s is not None else ""
        small = state.offset_s is not None and abs(state.offset_s) < 1.0
        return ClockView("synced", state.upstream, offset, small)
    if state.problem:  # chronyd answered something that could not be read: unknown, not "unsynced"
        return ClockView("unknown")
    return ClockView("unsynced")


@bp.route("/time")
@requires("settings.view")
def time_page() -> Any:
    cfg = core.live_config()
    zone = cfg.clinic.timezone if cfg else "Asia/Tokyo"
    now = datetime.fromtimestamp(wctx.now(), ZoneInfo(zone))
    shown = f"{now:%Y年%m月%d日}（{WEEKDAYS[now.weekday()]}） {now:%H:%M:%S}"
    return render_template(
        "settings/time.html", now=shown, zone=ZONE_LABELS.get(zone, zone), clock=asked_clock()
    )
