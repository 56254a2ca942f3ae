"""Long-running work of the SIEM area, run by `mamori daemon`: rsyslogd and the spooler, while `siem.enabled`."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from siem.worker import RsyslogWorker, SpoolWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list:
    """rsyslogd's worker always (with the forwarder off it finds no rsyslog.conf and keeps rsyslogd stopped);
    the spooler only while on."""
    workers: list = [RsyslogWorker(ctx)]
    if cfg.siem.enabled:
        workers.append(SpoolWorker(ctx, cfg))
    return workers
