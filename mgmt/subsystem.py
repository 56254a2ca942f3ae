"""The management link as an appliance subsystem: render (mgmt.render) -> check -> apply -> verify.

Apply reuses vpn.wg.WgInterface (kernel module, else wireguard-go stopped by PID): create the interface if
missing, the box's tunnel address and key (no listen port: it dials out), exactly one peer (the hub, with
its endpoint, AllowedIPs = the hub's addresses and PersistentKeepalive), and a route to each hub address.
Switching the link off deletes the interface. It runs after the firewall, whose forward chain already drops
everything to and from the interface name before the interface exists.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.subsystem import Context, Subsystem
from mgmt.keys import ensure_link_key
from mgmt.render import LinkPlan, key_path, render_link
from vpn.wg import WgInterface

log = logging.getLogger(__name__)
KV_IFNAME = "mgmt.interface"


class MgmtSubsystem(Subsystem):
    name = "mgmt"

    def __init__(self, ctx: Context, ifname: str | None = None, netns: str | None = None) -> None:
        self.ctx = ctx
        self.ifname = ifname
        self.netns = netns

    def interface(self, plan: LinkPlan) -> WgInterface:
        return WgInterface(plan.ifname, run_dir=self.ctx.paths.run_dir, netns=self.netns)

    def render(self, cfg: MamoriConfig) -> LinkPlan:
        return render_link(cfg, self.ifname)

    def check(self, plan: LinkPlan) -> None:
        if plan.enabled and shutil.which("wg") is None:
            raise ApplyError("wireguard-tools（wg）がありません", "wireguard-tools (wg) is not installed",
                             code="mgmt.wg")  # fmt: skip

    def apply(self, plan: LinkPlan) -> None:
        iface = self.interface(plan)
        self._remove_renamed(plan.ifname)
        if not plan.enabled:
            if iface.exists():
                log.info("management link off: removing %s", iface.name)
                iface.delete()
            return
        ensure_link_key(key_path(self.ctx.paths))
        self.ctx.db.set_kv(KV_IFNAME, plan.ifname)  # before creating it: reset() and a rename find it
        if not iface.exists():
            log.info("creating the management link %s (%s)", iface.name, iface.create())
        self._only_address(iface, plan.address)
        iface.configure(plan.address, None, None, key_path(self.ctx.paths))
        stale = [k for k in iface.dump().peers if k != plan.hub_public_key]
        args = ["peer", plan.hub_public_key, "endpoint", plan.hub_endpoint,
                "persistent-keepalive", str(plan.keepalive), "allowed-ips", ",".join(plan.hub_allowed_ips)]  # fmt: skip
        for key in stale:
            args += ["peer", key, "remove"]
        iface.run(["wg", "set", iface.name, *args])
        for dst in plan.routes():
            iface.run(["ip", "route", "replace", dst, "dev", iface.name])

    @staticmethod
    def _only_address(iface: WgInterface, want: str) -> None:
        """A changed tunnel address replaces the old one instead of adding a second one."""
        res = iface.run(["ip", "-j", "addr", "show", "dev", iface.name])
        have = [f"{a['local']}/{a['prefixlen']}" for link in json.loads(res.stdout or "[]")
                for a in link.get("addr_info", [])]  # fmt: skip
        for addr in have:
            if ipaddress.ip_interface(addr) != ipaddress.ip_interface(want):
                iface.run(["ip", "addr", "del", addr, "dev", iface.name])

    def _remove_renamed(self, ifname: str) -> None:
        old = self.ctx.db.get_kv(KV_IFNAME)
        if old and old != ifname:
            WgInterface(old, run_dir=self.ctx.paths.run_dir, netns=self.netns).delete()
            self.ctx.db.set_kv(KV_IFNAME, None)

    def verify(self, plan: LinkPlan) -> None:
        iface = self.interface(plan)
        if not plan.enabled:
            if iface.exists():
                raise ApplyError("保守業者の管理接続を止められませんでした", f"{iface.name} still exists",
                                 code="mgmt.verify")  # fmt: skip
            return
        state = iface.dump()
        peers = state.peers
        hub = peers.get(plan.hub_public_key)
        if list(peers) != [plan.hub_public_key] or hub is None:
            raise ApplyError("保守業者の管理接続の相手が設定どおりではありません",
                             "the link's peer list is not exactly the hub", code="mgmt.verify")  # fmt: skip
        if sorted(hub.allowed_ips) != sorted(plan.hub_allowed_ips) or hub.keepalive != plan.keepalive:
            raise ApplyError("保守業者の管理接続の設定が反映されていません",
                             "the hub's allowed IPs or keepalive are not in force", code="mgmt.verify")  # fmt: skip

    def reset(self) -> None:
        """A first apply failed elsewhere: no link (down is the safe state of a door into the box)."""
        name = self.ifname or self.ctx.db.get_kv(KV_IFNAME)
        if name:
            WgInterface(name, run_dir=self.ctx.paths.run_dir, netns=self.netns).delete()


def subsystems(ctx: Context) -> list[MgmtSubsystem]:
    return [MgmtSubsystem(ctx)]
