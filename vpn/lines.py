"""Which way a new doctor's config reaches the box, on the line the clinic has (issue 17). Pure.

Japanese clinic lines differ: a router that forwards the UDP port (IPv4, "direct"); MAP-E (v6プラス,
OCN バーチャルコネクト) where only the router's port set can be forwarded (then `vpn.listen_port` is one of
them); DS-Lite and carrier NAT with no way in over IPv4, where IPv6 may still get in ("ipv6"); and lines with
no way in at all, where the doctor's packets go to the vendor's hub and are forwarded, still encrypted,
through the box's outbound management link ("relay"; the hub holds no doctor key). `vpn.path` names one, or
"auto" lets the last reachability check (vpn/reach.py) choose. The chosen path is written into the .conf as a
comment, with its endpoint, and on the relay a smaller MTU: the doctor's packets travel inside the link's
WireGuard (60 bytes of IPv4 or 80 of IPv6 more each), so inner packets must leave room for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.model import MamoriConfig

LINK_MTU = 1420  # WireGuard's default for the management link (room for an IPv6 outer header)
RELAY_MTU = LINK_MTU - 80  # the doctor's tunnel inside the link: its own IPv6-sized overhead again

PATH_COMMENTS = {
    "direct": "# 接続経路: 直接（医院のルーターから本機の UDP {port}番へ）",
    "ipv6": "# 接続経路: IPv6 で直接（本機の UDP {port}番へ）",
    "relay": "# 接続経路: 保守業者のハブ経由の中継（暗号化されたまま転送され、ハブは中身を読めません）",
}


@dataclass(frozen=True)
class Reach:
    """What the last reachability check found per family: True, False, or None (not known)."""

    ipv4: bool | None = None
    ipv6: bool | None = None


def relay_ready(cfg: MamoriConfig) -> bool:
    """The relay can carry doctors: a hub endpoint for this clinic and the management link on."""
    return bool(cfg.vpn.relay_endpoint) and cfg.mgmt.enabled


def choose_path(cfg: MamoriConfig, reach: Reach | None = None) -> str:
    """`vpn.path`, or for "auto": IPv4 if the check saw it get in (or nothing is known and an IPv4 endpoint is
    set), else IPv6 if it got in, else the relay when it is ready, else direct (which will not work, and the
    reach page says so)."""
    v = cfg.vpn
    if v.path != "auto":
        return v.path
    reach = reach or Reach()
    if v.endpoint and reach.ipv4 is not False:
        return "direct"
    if v.endpoint6 and reach.ipv6 is True:
        return "ipv6"
    if relay_ready(cfg):
        return "relay"
    if v.endpoint6 and reach.ipv6 is None:
        return "ipv6"
    return "direct"


def endpoint_for(cfg: MamoriConfig, path: str) -> tuple[str, int]:
    """(host, port) a doctor's device sends to on this path."""
    v = cfg.vpn
    if path == "relay":
        host, _, port = v.relay_endpoint.rpartition(":")
        return host.strip("[]"), int(port)
    return (v.endpoint6 if path == "ipv6" else v.endpoint), v.listen_port


def client_mtu(path: str) -> int | None:
    """The MTU line of the doctor's .conf: only on the relay (elsewhere the app's default is right)."""
    return RELAY_MTU if path == "relay" else None


def box_mtu(cfg: MamoriConfig) -> int | None:
    """The box's VPN interface MTU: smaller while doctors may come through the relay, so that what the box
    sends them fits inside the management link too (None: leave WireGuard's default)."""
    return RELAY_MTU if relay_may_carry(cfg) else None


def relay_may_carry(cfg: MamoriConfig) -> bool:
    """Doctors may come through the hub's relay: it is ready and the path is "relay" or "auto" (with "direct"
    or "ipv6" no config issued now uses it)."""
    return relay_ready(cfg) and cfg.vpn.path in ("relay", "auto")


def link_needs_vpn_port(cfg: MamoriConfig) -> bool:
    """The box's VPN UDP port must answer on the management link: the relay may carry doctors, or the hub's
    prober sends its link probe there (`vpn.probe`, vpn/reach.py). Nothing else legitimate comes to that
    port over the link, so otherwise the firewall keeps it closed there."""
    return cfg.vpn.enabled and cfg.mgmt.enabled and (cfg.vpn.probe is not None or relay_may_carry(cfg))


def comment_for(cfg: MamoriConfig, path: str) -> str:
    return PATH_COMMENTS[path].format(port=cfg.vpn.listen_port)


def line_issues(cfg: MamoriConfig) -> list[tuple[str, str, str]]:
    """(field path, ja, en): the relay needs the management link it travels through; the IPv6 name's
    updater needs the interface it watches (vpn/ddns.py)."""
    from vpn.ddns import ddns_issues

    out = ddns_issues(cfg)
    if cfg.vpn.path == "relay" and not cfg.mgmt.enabled:
        out.append(("vpn.path", "中継（relay）は保守業者の管理接続（mgmt）が有効なときだけ使えます",
                    "the relay path needs the management link (mgmt.enabled)"))  # fmt: skip
    return out
