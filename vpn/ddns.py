"""The box keeps its IPv6 name (`vpn.endpoint6`) at its current WAN address (issue 17.2).

Japanese IPoE lines hand out an IPv6 prefix that can change (a contract change, a home gateway renumbered).
Doctors' configs carry a name, and the box updates that name itself by an RFC 2136 dynamic update signed with
TSIG (RFC 8945): the standard that bind9 and knot on the vendor's hub, and many dynamic-DNS providers, accept.
One update replaces the name's whole AAAA set with the one address, then a query to the same server checks it
is there.

This module is the pure part and the one network exchange: which address to publish (`pick_address`), the
update and its check (`publish`), and what each failure means for the clinic (`DdnsError`, in Japanese).
Scope: AAAA only (IPv4 has its own endpoint and the relay); the secret is read from `<keys>/ddns_tsig`,
never from the config, and never printed, logged or audited. The worker is vpn/ddns_worker.py.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.fileio import atomic_write
from vpn.model import DdnsConfig

SECRET_FILE = "ddns_tsig"
TIMEOUT_S = 5.0
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
# Linux address flags (linux/if_addr.h): an address that is going away or not usable yet is not published.
IFA_F_TEMPORARY = 0x01  # a privacy address: it changes every day, doctors need the stable one
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80  # set by hand (the config), not learnt from the router
_UNUSABLE = IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE


class DdnsError(MamoriError):
    code = "vpn.ddns"


@dataclass(frozen=True)
class WanAddress:
    """One IPv6 address as the kernel lists it on the WAN interface."""

    address: str
    flags: int = 0
    preferred: int = 0xFFFFFFFF  # preferred lifetime in seconds (forever: 0xffffffff)


def is_global_unicast(address: str) -> bool:
    """In 2000::/3, the global unicast space (RFC 4291). The documentation prefix 2001:db8::/32 counts: the
    lab uses it, and the DNS server, not the box, decides what it publishes."""
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return ip in GLOBAL_UNICAST and ip.ipv4_mapped is None


def pick_address(addrs: list[WanAddress]) -> str | None:
    """The address doctors should use: global unicast, not temporary, deprecated or tentative; one set by
    hand before a learnt one, then the longest preferred lifetime (after a renumber the new prefix's).
    The lowest address breaks ties, so the choice does not flap between polls."""
    usable = [a for a in addrs if is_global_unicast(a.address) and not a.flags & _UNUSABLE]
    if not usable:
        return None
    best = min(
        usable, key=lambda a: (not a.flags & IFA_F_PERMANENT, -a.preferred, ipaddress.ip_address(a.address))
    )
    return str(ipaddress.IPv6Address(best.address))


def wan_interface(cfg: MamoriConfig) -> str | None:
    """`vpn.ddns.interface`, else the first interface in zone wan."""
    d = cfg.vpn.ddns
    if d is not None and d.interface:
        return d.interface
    return next((i.name for i in cfg.interfaces if i.zone == "wan"), None)


def ddns_issues(cfg: MamoriConfig) -> list[tuple[str, str, str]]:
    """(field path, ja, en): the interface it watches must exist in the config."""
    d = cfg.vpn.ddns
    if d is None:
        return []
    names = {i.name for i in cfg.interfaces}
    name = wan_interface(cfg)
    if name is None or name not in names:
        return [("vpn.ddns.interface", f"IPv6 の名前の更新で見るインターフェース {name or '（wan）'} が設定にありません",
                 f"the interface vpn.ddns watches ({name or 'a wan interface'}) is not in the config")]  # fmt: skip
    return []


# --- the secret ----------------------------------------------------------------------------------------------


def secret_path(keys_dir: Path) -> Path:
    return keys_dir / SECRET_FILE


def check_secret(text: str) -> str:
    """A TSIG secret as bind9's `tsig-keygen` and providers print it: base64, at least 16 bytes."""
    value = "".join(text.split())
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DdnsError("TSIG の鍵（secret）は base64 の文字列にしてください（tsig-keygen の secret の値）",
                        "the TSIG secret must be base64 (the secret value tsig-keygen prints)") from None  # fmt: skip
    if len(raw) < 16:
        raise DdnsError(
            "TSIG の鍵（secret）が短すぎます（16 バイト以上）",
            "the TSIG secret is too short (16 bytes or more)",
        )
    return value


def save_secret(keys_dir: Path, text: str) -> None:
    """Write the checked secret (mode 0600, temp file + rename)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(secret_path(keys_dir), check_secret(text) + "\n", mode=0o600)


def load_secret(keys_dir: Path) -> str:
    try:
        text = secret_path(keys_dir).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DdnsError("TSIG の鍵がまだ入っていません（mamori vpn ddns set-secret で入れてください）",
                        "no TSIG secret yet (set it with mamori vpn ddns set-secret)") from None  # fmt: skip
    return check_secret(text)


# --- the update ----------------------------------------------------------------------------------------------


def _server_address(d: DdnsConfig) -> str:
    try:
        infos = socket.getaddrinfo(d.server, d.port, type=socket.SOCK_STREAM)
    except OSError:
        raise DdnsError(f"DNS サーバー {d.server} の名前を引けません（インターネット接続か名前を確かめてください）",
                        f"cannot resolve the DNS server {d.server}") from None  # fmt: skip
    return str(infos[0][4][0])


def publish(d: DdnsConfig, name: str, address: str, secret: str, timeout: float = TIMEOUT_S) -> None:
    """Replace `name`'s AAAA set with `address` on the server, signed with TSIG, then read it back.
    Raises DdnsError with what went wrong in words a clinic can pass on to whoever runs the server."""
    try:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode
        import dns.tsig
        import dns.update
    except ImportError:
        raise DdnsError(
            "本機に dnspython（python3-dnspython）が入っていません", "dnspython is not installed"
        ) from None

    server = _server_address(d)
    keyring = dns.tsig.Key(d.tsig_key_name, secret, d.tsig_algorithm)  # a Key carries its algorithm
    upd = dns.update.UpdateMessage(
        d.zone, keyring=keyring, keyname=d.tsig_key_name, keyalgorithm=d.tsig_algorithm
    )
    upd.replace(name + ".", d.ttl, "AAAA", address)
    where = f"{d.server}:{d.port}"
    try:
        resp = dns.query.tcp(upd, server, timeout=timeout, port=d.port)
        rcode = resp.rcode()
        if rcode == dns.rcode.NOERROR:
            got = dns.query.tcp(
                dns.message.make_query(name + ".", "AAAA"), server, timeout=timeout, port=d.port
            )
            have = {r.address for rrset in got.answer for r in rrset if rrset.rdtype == 28}
            if {str(ipaddress.ip_address(a)) for a in have} != {address}:
                raise DdnsError(f"{where} は更新を受け付けましたが、名前 {name} に {address} が見えません",
                                f"{where} accepted the update but {name} does not show {address}")  # fmt: skip
            return
    except dns.tsig.PeerBadTime:
        raise DdnsError("DNS サーバーに断られました：本機の時計がずれています（時刻合わせを確かめてください）",
                        f"{where} refused the update: the box's clock is off (TSIG BADTIME)") from None  # fmt: skip
    except dns.tsig.PeerError:  # BADKEY, BADSIG: the key name, algorithm or secret is not the server's
        raise _bad_key(where) from None
    except (dns.exception.Timeout, TimeoutError):
        raise DdnsError(f"DNS サーバー {where} から返事がありません（回線か、サーバーのファイアウォールを確かめてください）",
                        f"no answer from the DNS server {where}") from None  # fmt: skip
    except OSError as exc:
        raise DdnsError(f"DNS サーバー {where} に接続できません（{exc.strerror or exc}）",
                        f"cannot connect to the DNS server {where} ({exc})") from None  # fmt: skip
    except dns.exception.DNSException as exc:
        raise DdnsError(
            f"DNS サーバー {where} の返事を読めません", f"bad answer from {where}: {exc}"
        ) from None
    if rcode == dns.rcode.NOTAUTH:
        raise _bad_key(where)
    text = dns.rcode.to_text(rcode)
    if rcode == dns.rcode.REFUSED:
        raise DdnsError(f"DNS サーバー {where} がこの名前の更新を許可していません（REFUSED：サーバーの update-policy を確かめてください）",
                        f"{where} refused the update of {name} (REFUSED: check its update-policy)")  # fmt: skip
    raise DdnsError(
        f"DNS サーバー {where} が更新を断りました（{text}）", f"{where} refused the update ({text})"
    )


def _bad_key(where: str) -> DdnsError:
    return DdnsError(f"DNS サーバー {where} に断られました：TSIG の鍵（名前・方式・secret）がサーバーと合っていません",
                     f"{where} refused the update: the TSIG key (name, algorithm or secret) does not match")  # fmt: skip
