"""設定 → 時刻: the box's clock as the clinic reads it, and whether it is synchronised.

The synchronisation state comes from the NTP area's `clock_state(ctx)` when that module is installed. When
it is not (or it answers something this page does not understand), the page says so plainly — it never
shows a state it did not read. Non-goal: changing the time or the NTP servers here (that is the config).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template

from webui import context as wctx
from webui import core
from webui.context import requires
from webui.views.settings import bp

log = logging.getLogger(__name__)

# Where the NTP area may put `clock_state(ctx)`; the first that imports wins.
CLOCK_MODULES: tuple[str, ...] = ("appliance.ntp", "appliance.ntp.state", "timesvc", "timesvc.state")
ZONE_LABELS = {"Asia/Tokyo": "日本時間（Asia/Tokyo）", "UTC": "協定世界時（UTC）"}
WEEKDAYS = "月火水木金土日"


@dataclass(frozen=True)
class ClockView:
    synced: bool
    offset_ms: float | None
    upstream: str


def clock_state_function() -> Any | None:
    for name in CLOCK_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        fn = getattr(module, "clock_state", None)
        if callable(fn):
            return fn
    return None


def _field(state: Any, *names: str) -> Any:
    for name in names:
        value = state.get(name) if isinstance(state, dict) else getattr(state, name, None)
        if value is not None:
            return value
    return None


def read_clock() -> ClockView | None:
    """The NTP area's answer in the few fields this page shows, or None if there is none to show."""
    fn = clock_state_function()
    if fn is None:
        return None
    state = fn(wctx.ctx())
    synced = _field(state, "synced", "synchronised", "synchronized")
    if not isinstance(synced, bool):
        log.warning("clock_state returned no boolean 'synced': %r", type(state))
        return None
    offset = _field(state, "offset_ms", "offset_s", "offset", "offset_seconds")
    offset_ms = None
    if isinstance(offset, int | float):
        in_seconds = _field(state, "offset_ms") is None
        offset_ms = float(offset) * (1000.0 if in_seconds else 1.0)
    upstream = _field(state, "upstream", "server", "source", "reference")
    return ClockView(synced, offset_ms, str(upstream) if upstream else "")


@bp.route("/time")
@requires("settings.view")
def time_page() -> Any:
    cfg = core.live_config()
    zone = cfg.clinic.timezone if cfg else "Asia/Tokyo"
    now = datetime.fromtimestamp(wctx.now(), ZoneInfo(zone))
    shown = f"{now:%Y年%m月%d日}（{WEEKDAYS[now.weekday()]}） {now:%H:%M:%S}"
    return render_template(
        "settings/time.html", now=shown, zone=ZONE_LABELS.get(zone, zone), clock=read_clock()
    )
