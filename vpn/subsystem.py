"""The `vpn` subsystem: render/check/apply/verify of the WireGuard interface (see appliance/subsystem.py).

Render is a pure function of the config (`vpn.render.render_interface`): the interface without peers.
Devices are state, not config, so the peers are added where the state is read anyway, from the device
store at the moment they are used: `check` checks the stored devices' keys and addresses, `apply` reads
them again (the caller holds the apply lock) and sets them, and `verify` compares the live peers with
the list `apply` set. Like the firewall's sets, which its apply re-seeds from the records. Reading the
store at apply time, not at render, also narrows the window in which a revoke could be undone by an
apply (vpn.provision.sync_peers closes it). Apply creates the interface if missing and reconciles
peers in place; turning the VPN off removes the interface.
The firewall (not this module) decides what an admitted tunnel address may reach.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.subsystem import Context, Subsystem
from vpn.keys import ensure_server_key, is_valid_key
from vpn.render import InterfacePlan, ServerPlan, render_interface
from vpn.store import DeviceStore
from vpn.wg import WgInterface

log = logging.getLogger(__name__)
KV_IFNAME = "vpn.interface"
DEFAULT_MTU = 1420  # WireGuard's own default; vpn.lines.box_mtu lowers it while the relay may carry doctors


def check_peers(plan: ServerPlan) -> None:
    """Refuse a peer list WireGuard would take but that is wrong: a broken key, a tunnel address twice."""
    seen: set[str] = set()
    for peer in plan.peers:
        if not is_valid_key(peer.public_key):
            raise ApplyError(
                f"{peer.user}/{peer.device} の公開鍵が壊れています",
                f"bad public key of {peer.user}/{peer.device}",
            )
        for ip in peer.allowed_ips:
            net = str(ipaddress.ip_network(ip))
            if net in seen:
                raise ApplyError(
                    f"トンネルアドレス {ip} が重複しています", f"tunnel address {ip} is used twice"
                )
            seen.add(net)


class VpnSubsystem(Subsystem):
    name = "vpn"

    def __init__(self, ctx: Context, ifname: str | None = None, netns: str | None = None) -> None:
        """The interface is `vpn.interface` from the config unless `ifname` overrides it (tests, bench)."""
        self.ctx = ctx
        self.ifname = ifname
        self.netns = netns
        self._applied: ServerPlan | None = None  # the peer list apply set, for verify

    def interface(self, plan: InterfacePlan) -> WgInterface:
        return WgInterface(plan.ifname, run_dir=self.ctx.paths.run_dir, netns=self.netns)

    def render(self, cfg: MamoriConfig) -> InterfacePlan:
        return render_interface(cfg, self.ifname)

    def with_stored_peers(self, plan: InterfacePlan) -> ServerPlan:
        """`plan` with the devices stored now as peers (any peers `plan` carries are not used)."""
        return plan.with_devices(DeviceStore(self.ctx.db).active())

    def check(self, plan: InterfacePlan) -> None:
        if not plan.enabled:
            return
        if shutil.which("wg") is None:
            raise ApplyError("wireguard-tools（wg）がありません", "wireguard-tools (wg) is not installed")
        check_peers(self.with_stored_peers(plan))

    def apply(self, plan: InterfacePlan) -> None:
        iface = self.interface(plan)
        self._remove_renamed(plan.ifname)
        if not plan.enabled:
            if iface.exists():
                log.info("vpn disabled: removing %s", iface.name)
                iface.delete()
            return
        full = self.with_stored_peers(plan)
        check_peers(full)  # the devices may have changed since check: refused before the interface changes
        key_path, _ = ensure_server_key(self.ctx.paths.keys_dir)
        if not iface.exists():
            log.info("creating %s (%s)", iface.name, iface.create())
        iface.configure(plan.address, plan.address6, plan.listen_port, key_path)
        iface.run(["ip", "link", "set", "dev", iface.name, "mtu", str(plan.mtu or DEFAULT_MTU)])
        iface.set_peers(full.peer_map())
        self._applied = full
        self.ctx.db.set_kv(KV_IFNAME, plan.ifname)

    def _remove_renamed(self, ifname: str) -> None:
        """`vpn.interface` changed: the interface this subsystem made before is removed, not left behind."""
        old = self.ctx.db.get_kv(KV_IFNAME)
        if old and old != ifname:
            WgInterface(old, run_dir=self.ctx.paths.run_dir, netns=self.netns).delete()
            self.ctx.db.set_kv(KV_IFNAME, None)

    def verify(self, plan: InterfacePlan) -> None:
        iface = self.interface(plan)
        if not plan.enabled:
            if iface.exists():
                raise ApplyError("VPN を止められませんでした", f"{iface.name} still exists")
            return
        state = iface.dump()
        _, public = ensure_server_key(self.ctx.paths.keys_dir)
        if state.listen_port != plan.listen_port or state.public_key != public:
            raise ApplyError("VPN の待ち受け設定が反映されていません", "listen port or key not in force")
        # What apply set, not the store read again: a device provisioned since (its sync waits for the
        # apply lock) would otherwise fail a config apply that did nothing wrong.
        applied = self._applied
        full = applied if applied is not None and applied.interface_plan() == _bare(plan) else None
        full = full or self.with_stored_peers(plan)
        have = {k: tuple(sorted(p.allowed_ips)) for k, p in state.peers.items()}
        want = {k: tuple(sorted(v)) for k, v in full.peer_map().items()}
        if have != want:
            raise ApplyError("VPN の端末一覧が反映されていません", "the live peer list differs from the plan")


def _bare(plan: InterfacePlan) -> InterfacePlan:
    return plan.interface_plan() if isinstance(plan, ServerPlan) else plan


def subsystems(ctx: Context) -> list[Subsystem]:
    return [VpnSubsystem(ctx)]
