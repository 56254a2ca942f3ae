"""The firewall as an appliance subsystem: render -> check (nft dry run) -> apply (one transaction) -> verify.

Also registers dnsmasq (DHCP/DNS for the internal zones), which this area owns.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.config.model import MamoriConfig
from appliance.subsystem import Context, Subsystem
from firewall import apply as fw_apply
from firewall.dnsmasq import DnsmasqSubsystem
from firewall.nft import sets_lock
from firewall.render import render_ruleset
from firewall.sets import reseed_from_records

log = logging.getLogger(__name__)


class FirewallSubsystem(Subsystem):
    name = "firewall"

    def __init__(self, ctx: Context, vpn_interface: str | None = None) -> None:
        self.ctx = ctx
        self.vpn_interface = vpn_interface

    def render(self, cfg: MamoriConfig) -> dict[str, Any]:
        return render_ruleset(cfg, vpn_interface=self.vpn_interface)

    def check(self, rendered: dict[str, Any]) -> None:
        fw_apply.check(rendered)

    def apply(self, rendered: dict[str, Any]) -> None:
        with sets_lock(self.ctx.paths.run_dir):
            fresh = not fw_apply.table_exists()
            fw_apply.apply(rendered, self.ctx.paths.run_dir)
            if fresh:  # after a reboot or a restore the kernel lost them; the records did not
                count = reseed_from_records(self.ctx)
                if count:
                    log.info("re-seeded %d blocked/quarantined addresses from the records", count)

    def verify(self, rendered: dict[str, Any]) -> None:
        fw_apply.verify(rendered)

    def reset(self) -> None:
        """Undo a first apply that failed elsewhere: fail closed, never open (no table = no filtering)."""
        with sets_lock(self.ctx.paths.run_dir):
            fw_apply.fail_closed()
            record = self.ctx.paths.run_dir / "firewall-counters.json"
            if record.exists():
                record.unlink()


def subsystems(ctx: Context) -> list[FirewallSubsystem | DnsmasqSubsystem]:
    """Firewall first (it must be live before any service answers), then DHCP/DNS."""
    return [FirewallSubsystem(ctx), DnsmasqSubsystem(ctx)]
