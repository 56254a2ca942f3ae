"""The vendor hub's half of the VPN relay (issue 17): plain nftables forwarding, rendered here, installed by
the vendor (`mamori mgmt hub-relay-rules ... > /etc/nftables.d/mamori-relay.nft`), used as is by the lab hub.

For each clinic the hub gives one public UDP port. A doctor's WireGuard packet to that port is DNATed to the
clinic box's management-link address and VPN listen port and SNATed to the hub's own tunnel address, so it
enters the box's outbound management link as a packet from the hub (the only source the link accepts) and
the box's answer goes back the same way; conntrack undoes both translations. There is no relay daemon and no
doctor key on the hub: the hub moves ciphertext it cannot read, and it cannot reach the clinic LAN through it
(the box accepts only its VPN port on the link, and forwards nothing from the link).

Pure: the same arguments give the same text; every value is validated before it is written.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from appliance.errors import MamoriError

TABLE = "mamori_relay"
_IFNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_PORT = re.compile(r"^[0-9]{1,5}$")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses


class RelayError(MamoriError):
    code = "mgmt.relay"


@dataclass(frozen=True)
class RelayClinic:
    """One clinic behind the hub: its public port on the hub, its box's link address and VPN port."""

    public_port: int
    box_address: str
    box_port: int = 51820
    name: str = ""


def parse_clinic(text: str) -> RelayClinic:
    """'40017=10.77.0.17:51820' or '40017=10.77.0.17' (the box's port defaults to 51820)."""
    bad = RelayError(
        f"「{text}」は「ハブのポート=本機のアドレス[:ポート]」の形式ではありません（例: 40017=10.77.0.17:51820）",
        f"'{text}' is not HUBPORT=BOXADDRESS[:PORT] (e.g. 40017=10.77.0.17:51820)",
    )
    public, sep, target = text.partition("=")
    if not sep or not _PORT.match(public):
        raise bad
    host, _, port = target.partition(":")
    try:
        address = str(ipaddress.IPv4Address(host))
    except ValueError:
        raise bad from None
    if port and not _PORT.match(port):
        raise bad
    return RelayClinic(int(public), address, int(port or 51820))


def render_hub_rules(clinics: list[RelayClinic], hub_address: str, wg_ifname: str) -> str:
    """The nft script: one DNAT and one SNAT per clinic, in a table of its own that reloading replaces."""
    try:
        hub = ipaddress.IPv4Address(hub_address)
    except ValueError:
        raise RelayError(
            f"ハブのトンネル内アドレス「{hub_address}」は IPv4 アドレスではありません",
            f"hub tunnel address '{hub_address}' is not an IPv4 address",
        ) from None
    if not _IFNAME.match(wg_ifname):
        raise RelayError(
            f"インターフェース名「{wg_ifname}」が正しくありません", f"bad interface name '{wg_ifname}'"
        )
    if not clinics:
        raise RelayError("医院が1つもありません", "no clinic given")
    seen: set[int] = set()
    dnat, snat = [], []
    for c in clinics:
        for port in (c.public_port, c.box_port):
            if not 1 <= port <= 65535:
                raise RelayError(f"ポート {port} は範囲外です", f"port {port} out of range")
        if c.public_port in seen:
            raise RelayError(
                f"ハブのポート {c.public_port} が2回使われています", f"hub port {c.public_port} used twice"
            )
        seen.add(c.public_port)
        box = ipaddress.IPv4Address(c.box_address)
        # Only from outside: a packet that came in over the link (another clinic's box) is never relayed,
        # so one clinic cannot use the hub to reach another clinic's VPN port.
        dnat.append(f'    iifname != "{wg_ifname}" fib daddr type local udp dport {c.public_port}'
                    f" dnat to {box}:{c.box_port}"
                    f' comment "clinic {box}"')  # fmt: skip
        snat.append(f'    oifname "{wg_ifname}" ct status dnat ip daddr {box} udp dport {c.box_port}'
                    f" snat to {hub}")  # fmt: skip
    return "\n".join([
        "# Mamori: 医院の VPN の中継（保守業者のハブ）。`nft -f` で読み込みます（再読み込みで置き換わります）。",
        "# 暗号化されたまま転送するだけで、ハブは医師の鍵を持たず、中身を読めません。",
        "# 必要: sysctl net.ipv4.ip_forward=1、ハブのファイアウォールで各ポートの UDP を受け付けること。",
        f"table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
        "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;", *dnat, "  }",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;", *snat, "  }",
        "}", "",
    ])  # fmt: skip
