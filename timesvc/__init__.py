"""Time for the clinic: chronyd serves NTP to the internal zones from an upstream source, and the box
reports its own clock's state (for the web UI, the monthly report and the MHLW checklist's log evidence)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.subsystem import Context
    from timesvc.status import ClockState


def clock_state(ctx: Context) -> ClockState:
    """`timesvc.status.clock_state`, importable from the package (the web UI looks here). Imported lazily:
    the config model imports timesvc.model, and timesvc.status needs the config model."""
    from timesvc.status import clock_state as read

    return read(ctx)
