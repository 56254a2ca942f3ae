"""Long-running work of maintenance SSH, run by `mamori daemon`: sshd, supervised by PID."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from sshsvc.worker import SshdWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[SshdWorker]:
    """Always one worker: with SSH switched off it finds no sshd_config and keeps sshd stopped (and stops
    one that an earlier generation started)."""
    return [SshdWorker(ctx)]
