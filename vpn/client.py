"""Bring up the client side of a tunnel from a .conf the box rendered (the lab's doctor PC, tests, bench).

A real doctor uses the WireGuard app; this exists so the lab and the tests exercise exactly the config
the box hands out. Scope: the subset of wg-quick that `vpn.render.client_conf` writes (Address,
PrivateKey, PublicKey, Endpoint, AllowedIPs, PersistentKeepalive, MTU); no DNS, no hooks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from vpn.wg import WgInterface

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientConf:
    private_key: str | None
    addresses: tuple[str, ...]
    server_public_key: str
    endpoint: str
    allowed_ips: tuple[str, ...]
    keepalive: int
    mtu: int | None = None


def parse_client_conf(text: str) -> ClientConf:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ApplyError(
                "クライアント設定の形式が正しくありません", f"bad client config line: {line[:40]}"
            )
        values[key.strip()] = value.strip()

    def split(name: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in values.get(name, "").split(",") if x.strip())

    try:
        return ClientConf(
            private_key=values.get("PrivateKey"), addresses=split("Address"),
            server_public_key=values["PublicKey"], endpoint=values["Endpoint"],
            allowed_ips=split("AllowedIPs"), keepalive=int(values.get("PersistentKeepalive", "0")),
            mtu=int(values["MTU"]) if "MTU" in values else None,
        )  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise ApplyError(
            "クライアント設定に必要な項目がありません", f"client config incomplete: {exc}"
        ) from None


def up_client(
    conf: ClientConf, ifname: str, key_dir: Path, netns: str | None = None, private_key: str | None = None
) -> WgInterface:
    """Create and configure the client interface; routes for AllowedIPs go into the tunnel."""
    key = private_key or conf.private_key
    if not key:
        raise ApplyError("秘密鍵がありません", "no private key for the client")
    key_path = Path(key_dir) / f"{ifname}.key"
    atomic_write(key_path, key + "\n", mode=0o600)
    iface = WgInterface(ifname, run_dir=key_dir, netns=netns)
    iface.create()
    for addr in conf.addresses:
        iface.run(["ip", "addr", "add", addr, "dev", ifname])
    args = ["private-key", str(key_path), "peer", conf.server_public_key, "endpoint", conf.endpoint,
            "allowed-ips", ",".join(conf.allowed_ips)]  # fmt: skip
    if conf.keepalive:
        args += ["persistent-keepalive", str(conf.keepalive)]
    iface.run(["wg", "set", ifname, *args])
    if conf.mtu:
        iface.run(["ip", "link", "set", ifname, "mtu", str(conf.mtu)])
    iface.run(["ip", "link", "set", ifname, "up"])
    for net in conf.allowed_ips:
        iface.run(["ip", "route", "replace", net, "dev", ifname])
    return iface
