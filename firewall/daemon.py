"""Long-running work of the firewall area, run by `mamori daemon`."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from firewall.droplog import DropLogWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[DropLogWorker]:
    return [DropLogWorker(ctx)] if cfg.firewall.log_drops else []
