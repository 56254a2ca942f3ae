"""Long-running work of the firewall area, run by `mamori daemon`."""

from __future__ import annotations

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from firewall.dnsmasq_worker import DnsmasqWorker
from firewall.droplog import DropLogWorker
from firewall.inventory import InventoryWorker


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[DropLogWorker | DnsmasqWorker | InventoryWorker]:
    workers: list[DropLogWorker | DnsmasqWorker | InventoryWorker] = [
        DnsmasqWorker(ctx),
        InventoryWorker(ctx, cfg),
    ]
    if cfg.firewall.log_drops:
        workers.append(DropLogWorker(ctx))
    return workers
