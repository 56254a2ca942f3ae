"""Provisioning a device: the box makes the key pair and shows the config once, or the user brings his key.

The box-generated private key exists only in the returned `Provisioned` (shown once as a QR code and a
.conf download); it is not stored. Re-issuing a device name revokes the old key, ends its session and takes it off the
live interface in the same step, so a lost phone stops working as soon as the new one is issued.

Order of a revoke: the database says revoked, the key leaves the interface (no new handshakes), then the
sessions are ended (admission and open connections cut). Each step can be run again: a revoke that failed
half way is finished by running it again, never answered with "no such device".
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import segno

from appliance.apply import apply_lock
from appliance.config.model import MamoriConfig
from appliance.errors import NotFoundError
from appliance.subsystem import Context
from vpn.keys import ensure_server_key, generate_keypair
from vpn.reach import status as reach_status
from vpn.render import RenderError, client_conf, render_server
from vpn.sessions import SessionManager
from vpn.store import Device, DeviceStore
from vpn.wg import PeerDiff, WgInterface

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provisioned:
    device: Device
    conf: str

    def qr_svg(self) -> str:
        buf = io.BytesIO()
        segno.make(self.conf, error="m").save(buf, kind="svg", scale=4, xmldecl=False)
        return buf.getvalue().decode("utf-8")

    def qr_png(self) -> bytes:
        buf = io.BytesIO()
        segno.make(self.conf, error="m").save(buf, kind="png", scale=6)
        return buf.getvalue()


def sync_peers(ctx: Context, cfg: MamoriConfig, iface: WgInterface) -> PeerDiff | None:
    """Push the stored devices to a running interface; None when the VPN interface is not up.

    Under the apply lock: a config apply snapshots the devices when it renders and sets that list when it
    applies, so a revoke landing in between would be undone by it. Waiting for the apply, then reading
    the devices, makes the last writer the one that saw the revoke. Never call this with the lock held
    (a config apply): flock on a second descriptor in the same process waits for ever. No caller does:
    VpnSubsystem.apply sets its rendered peers itself."""
    if not cfg.vpn.enabled:
        return None
    with apply_lock(ctx.paths):
        if not iface.exists():
            return None
        plan = render_server(cfg, DeviceStore(ctx.db).active(), iface.name)
        return iface.set_peers(plan.peer_map())


def provision(
    ctx: Context, cfg: MamoriConfig, user: str, device: str, public_key: str | None = None,
    iface: WgInterface | None = None,
) -> Provisioned:  # fmt: skip
    """Add (or re-issue) a device of `user` and return its client config, to be shown exactly once."""
    if not any(u.name == user for u in cfg.vpn.users):
        raise RenderError(f"VPN 利用者「{user}」は設定にありません", f"no VPN user '{user}' in the config")
    private = None
    if public_key is None:
        private, public_key = generate_keypair()
    store = DeviceStore(ctx.db)
    old = next((d for d in store.active(user) if d.device == device), None)
    dev = store.add(
        user, device, public_key, cfg.vpn.address, cfg.vpn.address6, box_generated=private is not None
    )
    _, server_public = ensure_server_key(ctx.paths.keys_dir)
    conf = client_conf(cfg, dev, server_public, private, path=reach_status(ctx, cfg).path)
    if iface is not None:  # the old key leaves the interface before its session is ended
        sync_peers(ctx, cfg, iface)
    if old is not None:  # re-issued: the old key is revoked; its admitted address must not stay admitted
        SessionManager(ctx, lambda: cfg).end_ip(old.ip4, "reissued")
    log.info("vpn device %s/%s provisioned (%s key)", user, device, "box" if private else "own")
    return Provisioned(dev, conf)


def revoke_device(
    ctx: Context, cfg: MamoriConfig, user: str, device: str, iface: WgInterface | None = None
) -> Device:
    """Revoke a device for good: its key leaves the interface and its open session is cut.

    Idempotent: for a device already revoked (an earlier attempt that failed half way) the interface is
    synced and its sessions ended again, unless its address now belongs to another active device."""
    store = DeviceStore(ctx.db)
    dev = next((d for d in store.active(user) if d.device == device), None)
    if dev is None:
        dev = next((d for d in reversed(store.all(user)) if d.device == device), None)
        if dev is None:
            raise NotFoundError(f"端末「{user}/{device}」はありません", f"no device {user}/{device}")
    revoked = store.revoke(dev.id) if dev.active else dev
    if iface is not None:
        sync_peers(ctx, cfg, iface)
    holder = store.by_tunnel_ip(revoked.ip4)
    if holder is None:  # an address reused since belongs to another device's sessions now
        SessionManager(ctx, lambda: cfg).end_ip(revoked.ip4, "revoked")
    log.info("vpn device %s/%s revoked", user, device)
    return revoked
