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
from vpn.wg import DEFAULT_IFNAME, WgInterface

log = logging.getLogger(__name__)

try:  # the firewall owns the interface name its rules match; use its constant
    from firewall.render import VPN_INTERFACE as _FW_IFNAME
except ImportError:  # an image without the firewall area
    _FW_IFNAME = DEFAULT_IFNAME


class VpnSubsystem:
    name = "vpn"

    def __init__(self, ctx: Context, ifname: str = _FW_IFNAME, netns: str | None = None) -> None:
        self.ctx = ctx
        self.iface = WgInterface(ifname, run_dir=ctx.paths.run_dir, netns=netns)

    def render(self, cfg: MamoriConfig) -> ServerPlan:
        return render_server(cfg, DeviceStore(self.ctx.db).active(), self.iface.name)

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
        if not plan.enabled:
            if self.iface.exists():
                log.info("vpn disabled: removing %s", self.iface.name)
                self.iface.delete()
            return
        key_path, _ = ensure_server_key(self.ctx.paths.keys_dir)
        if not self.iface.exists():
            log.info("creating %s (%s)", self.iface.name, self.iface.create())
        self.iface.configure(plan.address, plan.address6, plan.listen_port, key_path)
        self.iface.set_peers(plan.peer_map())

    def verify(self, plan: ServerPlan) -> None:
        if not plan.enabled:
            if self.iface.exists():
                raise ApplyError("VPN を止められませんでした", f"{self.iface.name} still exists")
            return
        state = self.iface.dump()
        _, public = ensure_server_key(self.ctx.paths.keys_dir)
        if state.listen_port != plan.listen_port or state.public_key != public:
            raise ApplyError("VPN の待ち受け設定が反映されていません", "listen port or key not in force")
        have = {k: tuple(sorted(p.allowed_ips)) for k, p in state.peers.items()}
        want = {k: tuple(sorted(v)) for k, v in plan.peer_map().items()}
        if have != want:
            raise ApplyError("VPN の端末一覧が反映されていません", "the live peer list differs from the plan")


def subsystems(ctx: Context) -> list[Subsystem]:
    return [VpnSubsystem(ctx)]
