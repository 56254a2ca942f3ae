"""Read the firewall's drop log from NFLOG (netlink), because the kernel log does not work here.

Why NFLOG: nft's plain `log` writes to the kernel ring buffer only in the initial network namespace
(net.netfilter.nf_log_all_netns=0), so a box run in a namespace (the lab, containers) would log nothing.
`log group N` sends the packet and its prefix over netlink to whoever is bound to group N, in any
namespace. Only one listener per group and namespace: the daemon's DropLogWorker; `mamori fw drops
--listen` binds directly when no daemon runs.

Scope: NFULNL_MSG_PACKET messages, the prefix, interfaces and the first bytes of the packet (addresses,
protocol, ports). Everything here came from the network: parsing is bounds-checked; a malformed message is
counted and logged, never silently dropped and never allowed to raise out of the reader loop.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass

from appliance.clock import wall

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_CFG_CMD, NFULA_CFG_MODE = 1, 2
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_COPY_PACKET = 2
NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV, NFULA_PAYLOAD, NFULA_PREFIX = 1, 4, 5, 9, 10
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
COPY_RANGE = 64  # enough for IPv4/IPv6 + TCP/UDP ports; no patient data is kept


@dataclass(frozen=True)
class Drop:
    ts: float
    prefix: str
    in_if: str
    out_if: str
    src: str
    dst: str
    proto: str
    sport: int | None
    dport: int | None


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def config_message(group: int, payload: bytes, seq: int) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(group)) + payload
    header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
                         NLM_F_REQUEST | NLM_F_ACK, seq, 0)  # fmt: skip
    return header + body


def attributes(data: bytes) -> dict[int, bytes]:
    """TLV attributes; raises ValueError on a length that runs past the buffer."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4 or pos + length > len(data):
            raise ValueError(f"bad attribute length {length} at {pos}")
        out[kind & 0x3FFF] = data[pos + 4 : pos + length]
        pos += (length + 3) & ~3
    return out


def parse_packet(family: int, payload: bytes) -> tuple[str, str, str, int | None, int | None]:
    """(src, dst, proto, sport, dport) from the start of an IPv4/IPv6 packet; raises ValueError if short."""
    if family == socket.AF_INET:
        if len(payload) < 20:
            raise ValueError("short IPv4 header")
        ihl = (payload[0] & 0x0F) * 4
        proto, src, dst = payload[9], payload[12:16], payload[16:20]
        l4 = payload[ihl:]
    elif family == socket.AF_INET6:
        if len(payload) < 40:
            raise ValueError("short IPv6 header")
        proto, src, dst = payload[6], payload[8:24], payload[24:40]
        l4 = payload[40:]
    else:
        raise ValueError(f"unexpected family {family}")
    name = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}.get(proto, str(proto))
    sport = dport = None
    if proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4, 0)
    return str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), name, sport, dport


def _ifname(attrs: dict[int, bytes], kind: int) -> str:
    raw = attrs.get(kind)
    if not raw or len(raw) < 4:
        return ""
    index = struct.unpack("!I", raw[:4])[0]
    try:
        return socket.if_indextoname(index)
    except OSError:
        return str(index)


def decode(message: bytes) -> Drop:
    """One NFULNL_MSG_PACKET message body (after the netlink header)."""
    if len(message) < 4:
        raise ValueError("short nfgenmsg")
    family = message[0]
    attrs = attributes(message[4:])
    prefix = attrs.get(NFULA_PREFIX, b"").rstrip(b"\0").decode("utf-8", errors="replace")
    src, dst, proto, sport, dport = parse_packet(family, attrs.get(NFULA_PAYLOAD, b""))
    return Drop(wall(), prefix[:128], _ifname(attrs, NFULA_IFINDEX_INDEV), _ifname(attrs, NFULA_IFINDEX_OUTDEV),
                src, dst, proto, sport, dport)  # fmt: skip


class NflogReader:
    """Bound to one NFLOG group in the current network namespace until closed."""

    def __init__(self, group: int) -> None:
        self.group = group
        self.malformed = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self._configure(_attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND)), 1)
        self._configure(_attr(NFULA_CFG_MODE, struct.pack("!IBB", COPY_RANGE, NFULNL_COPY_PACKET, 0)), 2)

    def _configure(self, payload: bytes, seq: int) -> None:
        self.sock.send(config_message(self.group, payload, seq))
        reply = self.sock.recv(65536)
        if len(reply) >= 20 and struct.unpack_from("=H", reply, 4)[0] == NLMSG_ERROR:
            err = struct.unpack_from("=i", reply, 16)[0]
            if err != 0:
                raise OSError(-err, f"NFLOG config of group {self.group} refused (another listener bound?)")

    def read(self, timeout: float) -> list[Drop]:
        """Drops received within `timeout` seconds (possibly none)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return []
        drops, pos = [], 0
        while pos + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, pos)
            if length < 16 or pos + length > len(data):
                self._bad("netlink length", data[pos : pos + 32])
                break
            if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                try:
                    drops.append(decode(data[pos + 16 : pos + length]))
                except (ValueError, struct.error) as exc:
                    self._bad(str(exc), data[pos : pos + 32])
            pos += (length + 3) & ~3
        return drops

    def _bad(self, why: str, sample: bytes) -> None:
        self.malformed += 1
        log.warning("malformed NFLOG message #%d (%s): %s", self.malformed, why, sample.hex())

    def close(self) -> None:
        self.sock.close()
