"""Long-running work of software updates, run by `mamori daemon`: one worker (update.worker)."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from update.worker import UpdateWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[UpdateWorker]:
    """Always one worker: with `auto: off` it still reports install results and runs checks a person asks for."""
    return [UpdateWorker(ctx, cfg)]
