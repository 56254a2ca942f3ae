"""Long-running work of the metrics area, run by `mamori daemon`: the /metrics listener, when configured."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from metrics.server import MetricsWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[MetricsWorker]:
    """One worker serving every `metrics.listen` address; none when the list is empty (the default)."""
    return [MetricsWorker(ctx, cfg)] if cfg.metrics.listen else []
