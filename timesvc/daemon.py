"""Long-running work of the time service, run by `mamori daemon`: chronyd, supervised by PID."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from timesvc.worker import ChronyWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[ChronyWorker]:
    """Always one worker: with NTP switched off it finds no chrony.conf and keeps chronyd stopped."""
    return [ChronyWorker(ctx)]
