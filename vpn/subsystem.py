"""The `vpn` subsystem: render/check/apply/verify of the WireGuard interface (see appliance/subsystem.py).

Render is pure over (config, stored devices): devices are state, not config, so `render` takes one
snapshot of them from the database and hands it to `vpn.render.render_server`. Apply creates the
interface if missing and reconciles peers in place; turning the VPN off removes the interface.
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
from vpn.render import ServerPlan, render_server
from vpn.store import DeviceStore
from vpn.wg import WgInterface

log = logging.getLogger(__name__)
KV_IFNAME = "vpn.interface"


class VpnSubsystem:
    name = "vpn"

    def __init__(self, ctx: Context, ifname: str | None = None, netns: str | None = None) -> None:
        """The interface is `vpn.interface` from the config unless `ifname` overrides it (tests, bench)."""
        self.ctx = ctx
        self.ifname = ifname
        self.netns = netns

    def interface(self, plan: ServerPlan) -> WgInterface:
        return WgInterface(plan.ifname, run_dir=self.ctx.paths.run_dir, netns=self.netns)

    def render(self, cfg: MamoriConfig) -> ServerPlan:
        return render_server(cfg, DeviceStore(self.ctx.db).active(), self.ifname)

    def check(self, plan: ServerPlan) -> None:
        if not plan.enabled:
            return
        if shutil.which("wg") is None:
            raise ApplyError("wireguard-tools（wg）がありません", "wireguard-tools (wg) is not installed")
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

    def apply(self, plan: ServerPlan) -> None:
        iface = self.interface(plan)
        self._remove_renamed(plan.ifname)
        if not plan.enabled:
            if iface.exists():
                log.info("vpn disabled: removing %s", iface.name)
                iface.delete()
            return
        key_path, _ = ensure_server_key(self.ctx.paths.keys_dir)
        if not iface.exists():
            log.info("creating %s (%s)", iface.name, iface.create())
        iface.configure(plan.address, plan.address6, plan.listen_port, key_path)
        iface.set_peers(plan.peer_map())
        self.ctx.db.set_kv(KV_IFNAME, plan.ifname)

    def _remove_renamed(self, ifname: str) -> None:
        """`vpn.interface` changed: the interface this subsystem made before is removed, not left behind."""
        old = self.ctx.db.get_kv(KV_IFNAME)
        if old and old != ifname:
            WgInterface(old, run_dir=self.ctx.paths.run_dir, netns=self.netns).delete()
            self.ctx.db.set_kv(KV_IFNAME, None)

    def verify(self, plan: ServerPlan) -> None:
        iface = self.interface(plan)
        if not plan.enabled:
            if iface.exists():
                raise ApplyError("VPN を止められませんでした", f"{iface.name} still exists")
            return
        state = iface.dump()
        _, public = ensure_server_key(self.ctx.paths.keys_dir)
        if state.listen_port != plan.listen_port or state.public_key != public:
            raise ApplyError("VPN の待ち受け設定が反映されていません", "listen port or key not in force")
        have = {k: tuple(sorted(p.allowed_ips)) for k, p in state.peers.items()}
        want = {k: tuple(sorted(v)) for k, v in plan.peer_map().items()}
        if have != want:
            raise ApplyError("VPN の端末一覧が反映されていません", "the live peer list differs from the plan")


def subsystems(ctx: Context) -> list[Subsystem]:
    return [VpnSubsystem(ctx)]
