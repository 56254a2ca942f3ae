"""Which config changes would cut the management link the fleet API itself runs over.

Pure: compares the live config with the proposed one. A vendor cannot touch `mgmt:` (mgmt.manage, admin
only), but other sections still carry the link: what a vendor with the usual grants could change and so
lose the box (found by reading firewall/render.py `link_input`, appliance/webserver.py `web_addresses`,
appliance/network.py and mgmt/model.py):

- `web.port`: the link opens only the web UI's port (mgmt.model.link_ports); a new port moves the API away
  from the address the controller talks to (web.manage).
- the wan interfaces (name, address, gateway, VLAN, a switch to dhcp): the box's default route and source
  address, so the UDP packets to the hub's endpoint (settings.edit).
- a clinic network that comes to contain the hub's endpoint address: the box would route the tunnel's
  packets into the clinic (settings.edit).
- `mgmt:` itself (admin only, listed for completeness: a root CLI or an admin may use the API too).

Not a cut, though it looks like one: `web.zones` (the web UI always listens on the link address) and
firewall rules (the link's input chain is fixed; no rule can name the link). Non-goals: DNS of a hub
given by name, IDS blocks of the hub's address (state, not config).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from appliance.config.model import Interface, MamoriConfig
from mgmt.model import split_endpoint


@dataclass(frozen=True)
class Cut:
    """One change that would cut the link: where, and why in both languages."""

    path: str
    ja: str
    en: str


def _wan(cfg: MamoriConfig) -> list[Interface]:
    return sorted((i for i in cfg.interfaces if i.zone == "wan"), key=lambda i: i.name)


def _networks_holding(cfg: MamoriConfig, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> set[str]:
    out = set()
    for iface in cfg.interfaces:
        if iface.zone == "wan":
            continue
        for addr in (iface.address, iface.address6):
            if addr and addr != "dhcp" and ip in ipaddress.ip_interface(addr).network:
                out.add(iface.name)
    return out


def link_cuts(old: MamoriConfig | None, new: MamoriConfig) -> list[Cut]:
    """Every change from `old` to `new` that would cut a management link that is on now; [] if none."""
    if old is None or not old.mgmt.enabled:
        return []
    cuts: list[Cut] = []
    if new.mgmt != old.mgmt:
        cuts.append(Cut("mgmt", "保守業者の管理接続（mgmt）の設定が変わります",
                        "the management link's own settings (mgmt) change"))  # fmt: skip
    if new.web.port != old.web.port:
        cuts.append(Cut("web.port", f"管理画面のポートが {old.web.port} から {new.web.port} に変わり、管理接続から"
                        "今の窓口に届かなくなります",
                        f"the web UI port changes from {old.web.port} to {new.web.port}: the API moves away "
                        "from where the link reaches it"))  # fmt: skip
    if _wan(new) != _wan(old):
        cuts.append(Cut("interfaces", "インターネット側（wan）のインターフェース・アドレス・ゲートウェイが変わり、"
                        "保守業者のハブへの通り道が変わります",
                        "the wan interface, address or gateway changes: the way to the hub changes"))  # fmt: skip
    try:
        host, _ = split_endpoint(old.mgmt.hub_endpoint)
        hub_ip = ipaddress.ip_address(host)
    except ValueError:
        return cuts  # a hub by name: its address is not in the config
    added = _networks_holding(new, hub_ip) - _networks_holding(old, hub_ip)
    if added:
        names = ", ".join(sorted(added))
        cuts.append(Cut("interfaces", f"院内のネットワーク（{names}）が保守業者のハブのアドレス {hub_ip} を含み、"
                        "管理接続が院内へ向かってしまいます",
                        f"a clinic network ({names}) would contain the hub's address {hub_ip}"))  # fmt: skip
    return cuts
