"""Long-running work of the management link, run by `mamori daemon`: a watcher that writes to the audit
log when the hub connects (the first handshake after a silence) and when it goes quiet, so the clinic can
read later when the vendor's hub was connected (`mamori mgmt status`, the web page, `mamori audit list`).

Polls `wg show dump` (no packets of its own); nothing runs while the link is off. Non-goal: keeping the
link up (WireGuard and the keepalive do that) or alerting on a down link (the vendor's Prometheus sees it).
"""

from __future__ import annotations

import logging
import threading

from appliance.audit import audit_log
from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.subsystem import Context
from mgmt.code import fingerprint
from mgmt.status import UP_WITHIN_S
from vpn.wg import WgInterface

log = logging.getLogger(__name__)
ACTOR = "mgmt-link"


class LinkWatcher:
    name = "mgmt-link"

    def __init__(self, ctx: Context, cfg: MamoriConfig, poll: float = 10.0) -> None:
        self.ctx = ctx
        self.m = cfg.mgmt
        self.poll = poll
        self.up = False

    def step(self, now: float | None = None) -> str | None:
        """One look; returns "up" / "down" when it changed (and audited it), else None."""
        now = wall() if now is None else now
        iface = WgInterface(self.m.interface, run_dir=self.ctx.paths.run_dir)
        try:
            peer = iface.dump().peers.get(self.m.hub_public_key) if iface.exists() else None
        except MamoriError as exc:
            log.warning("management link state unreadable: %s", exc)
            return None
        handshake = peer.latest_handshake if peer else 0
        up = handshake > 0 and now - handshake < UP_WITHIN_S
        if up == self.up:
            return None
        self.up = up
        action = "mgmt.link_up" if up else "mgmt.link_down"
        detail = {"hub": self.m.hub_endpoint, "fingerprint": fingerprint(self.m.hub_public_key),
                  "latest_handshake": handshake}  # fmt: skip
        audit_log(self.ctx).record(ACTOR, action, detail, "mgmt")
        return "up" if up else "down"

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.poll)


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[LinkWatcher]:
    return [LinkWatcher(ctx, cfg)] if cfg.mgmt.enabled else []
