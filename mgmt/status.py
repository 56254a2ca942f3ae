"""What the management link is doing now, for `mamori mgmt status` and the web page: whether the live
config switches it on, the hub's endpoint and key fingerprint, the box's own public key (the vendor adds it
to the hub), whether the tunnel is up (the latest handshake from `wg show dump`), and what the hub did
(audit entries whose remote address is one of the hub's tunnel addresses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.clock import wall
from appliance.errors import ApplyError
from appliance.revisions import live_config
from appliance.subsystem import Context
from mgmt.code import fingerprint
from mgmt.keys import link_public_key
from mgmt.render import key_path
from vpn.wg import WgInterface

# WireGuard re-handshakes every 2 minutes while packets flow (the keepalive makes them flow): a handshake
# older than this means the hub has not answered for a while.
UP_WITHIN_S = 180


@dataclass(frozen=True)
class LinkState:
    enabled: bool
    interface: str = ""
    hub_endpoint: str = ""
    hub_fingerprint: str = ""
    address: str = ""
    hub_addresses: list[str] = field(default_factory=list)
    box_public_key: str | None = None
    exists: bool = False  # the interface is there
    latest_handshake: int = 0  # epoch seconds, 0 = never
    rx: int = 0
    tx: int = 0
    up: bool = False
    activity: list[dict] = field(default_factory=list)  # the hub's audit entries, newest first


def hub_activity(ctx: Context, hub_addresses: list[str], limit: int = 20) -> list[dict]:
    """What came from the hub's addresses (web sign-ins, changes) and the link's own up/down records."""
    from appliance.queries import audit_from

    return [{k: r[k] for k in ("ts", "actor", "action", "source", "remote")}
            for r in audit_from(ctx.db, hub_addresses, "mgmt", limit)]  # fmt: skip


def link_state(ctx: Context, netns: str | None = None) -> LinkState:
    cfg = live_config(ctx.db)
    if cfg is None:
        return LinkState(enabled=False)
    m = cfg.mgmt
    iface = WgInterface(m.interface, run_dir=ctx.paths.run_dir, netns=netns)
    state = LinkState(
        enabled=m.enabled,
        interface=m.interface,
        hub_endpoint=m.hub_endpoint,
        hub_fingerprint=fingerprint(m.hub_public_key) if m.hub_public_key else "",
        address=m.address or "",
        hub_addresses=list(m.hub_addresses),
        box_public_key=link_public_key(key_path(ctx.paths)),
        activity=hub_activity(ctx, list(m.hub_addresses)),
    )
    if not iface.exists():
        return state
    try:
        peer = iface.dump().peers.get(m.hub_public_key)
    except ApplyError:
        peer = None
    if peer is None:
        return LinkState(**{**state.__dict__, "exists": True})
    up = peer.latest_handshake > 0 and wall() - peer.latest_handshake < UP_WITHIN_S
    return LinkState(**{**state.__dict__, "exists": True, "latest_handshake": peer.latest_handshake,
                        "rx": peer.rx, "tx": peer.tx, "up": up})  # fmt: skip
