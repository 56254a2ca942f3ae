"""Conntrack events from the kernel (ctnetlink: NETLINK_NETFILTER, groups NEW and DESTROY), decoded.

Why events and not polling: a connection that opens and closes between two polls would be missed, and
the DESTROY event carries the connection's final byte counts each way (when net.netfilter.
nf_conntrack_acct is 1: see `enable_accounting`). Why not pyroute2's NFCTSocket: its sync API dumps and
changes entries but does not subscribe to event groups; the messages are small and stable
(linux/netfilter/nfnetlink_conntrack.h), so they are decoded here with the bounds-checked TLV walker of the
NFLOG reader (firewall.nflog.attributes).

Scope: the original tuple (addresses, protocol, ports), the conntrack id and the counters. Everything
here came from the kernel about traffic from the network: a malformed message is counted and logged, never
raised out of the reader; a full socket buffer (ENOBUFS: the kernel dropped events) is counted as lost.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance import clock as wall_clock
from firewall.nflog import NETLINK_NETFILTER, attributes

log = logging.getLogger(__name__)

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE = 0, 2
NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY = 1, 3
CTA_TUPLE_ORIG, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_ID = 1, 9, 10, 12
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_COUNTERS_BYTES, CTA_COUNTERS32_BYTES = 2, 4
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
ACCT_SYSCTL = Path("/proc/sys/net/netfilter/nf_conntrack_acct")


@dataclass(frozen=True)
class CtEvent:
    """One conntrack event: "new" (the first packet was accepted through the box) or "destroy"."""

    kind: str
    ts: float
    ct_id: int | None
    src: str
    dst: str
    proto: str
    sport: int | None
    dport: int | None
    bytes_orig: int = 0  # from the connection's initiator
    bytes_reply: int = 0  # back to it


def _u(raw: bytes | None, size: int) -> int | None:
    if raw is None:
        return None
    if len(raw) < size:
        raise ValueError(f"attribute of {len(raw)} bytes, expected {size}")
    return int.from_bytes(raw[:size], "big")


def _tuple(raw: bytes) -> tuple[str, str, str, int | None, int | None]:
    t = attributes(raw)
    ip = attributes(t.get(CTA_TUPLE_IP, b""))
    if CTA_IP_V4_SRC in ip and CTA_IP_V4_DST in ip:
        src, dst = ip[CTA_IP_V4_SRC][:4], ip[CTA_IP_V4_DST][:4]
        if len(src) != 4 or len(dst) != 4:
            raise ValueError("short IPv4 address")
    elif CTA_IP_V6_SRC in ip and CTA_IP_V6_DST in ip:
        src, dst = ip[CTA_IP_V6_SRC][:16], ip[CTA_IP_V6_DST][:16]
        if len(src) != 16 or len(dst) != 16:
            raise ValueError("short IPv6 address")
    else:
        raise ValueError("tuple without addresses")
    proto = attributes(t.get(CTA_TUPLE_PROTO, b""))
    num = _u(proto.get(CTA_PROTO_NUM), 1)
    if num is None:
        raise ValueError("tuple without protocol")
    ports = num in (6, 17, 132)
    sport = _u(proto.get(CTA_PROTO_SRC_PORT), 2) if ports else None
    dport = _u(proto.get(CTA_PROTO_DST_PORT), 2) if ports else None
    name = PROTO_NAMES.get(num, str(num))
    return str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), name, sport, dport


def _bytes(raw: bytes | None) -> int:
    if raw is None:
        return 0
    c = attributes(raw)
    if CTA_COUNTERS_BYTES in c:
        return _u(c[CTA_COUNTERS_BYTES], 8) or 0
    return _u(c.get(CTA_COUNTERS32_BYTES), 4) or 0


def decode(msg_type: int, body: bytes, ts: float) -> CtEvent | None:
    """One ctnetlink message (after the netlink header); None for a type that is not NEW or DELETE."""
    if msg_type >> 8 != NFNL_SUBSYS_CTNETLINK:
        return None
    kind = {IPCTNL_MSG_CT_NEW: "new", IPCTNL_MSG_CT_DELETE: "destroy"}.get(msg_type & 0xFF)
    if kind is None:
        return None
    if len(body) < 4:
        raise ValueError("short nfgenmsg")
    attrs = attributes(body[4:])
    if CTA_TUPLE_ORIG not in attrs:
        raise ValueError("no original tuple")
    src, dst, proto, sport, dport = _tuple(attrs[CTA_TUPLE_ORIG])
    return CtEvent(kind, ts, _u(attrs.get(CTA_ID), 4), src, dst, proto, sport, dport,
                   _bytes(attrs.get(CTA_COUNTERS_ORIG)), _bytes(attrs.get(CTA_COUNTERS_REPLY)))  # fmt: skip


def split(data: bytes, ts: float, bad: Callable[[str, bytes], None]) -> list[CtEvent]:
    """The events in one datagram of netlink messages; malformed ones go to `bad(why, sample)`."""
    out: list[CtEvent] = []
    pos = 0
    while pos + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, pos)
        if length < 16 or pos + length > len(data):
            bad("netlink length", data[pos : pos + 32])
            break
        try:
            ev = decode(kind, data[pos + 16 : pos + length], ts)
        except (ValueError, struct.error) as exc:
            bad(str(exc), data[pos : pos + 32])
        else:
            if ev is not None:
                out.append(ev)
        pos += (length + 3) & ~3
    return out


def enable_accounting(path: Path = ACCT_SYSCTL) -> bool:
    """Switch on byte counting per connection in this network namespace (counts start with connections
    created after it). Returns whether it is on; a box where it cannot be switched on says so once."""
    try:
        if path.read_text().strip() != "1":
            path.write_text("1")
            log.info("conntrack accounting switched on (%s)", path)
        return True
    except OSError as exc:
        log.error("cannot switch on conntrack accounting (%s): connections are recorded without bytes", exc)
        return False


def live_ids() -> set[int] | None:
    """The ids of the connections the kernel tracks now (IPv4 and IPv6), through pyroute2's dump; None
    when they cannot be read (then nothing is concluded from them)."""
    from pyroute2 import NFCTSocket

    ids: set[int] = set()
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            with NFCTSocket(nfgen_family=family) as ct:
                ids.update(int(m.get_attr("CTA_ID")) for m in ct.dump() if m.get_attr("CTA_ID") is not None)
    except (OSError, ValueError) as exc:  # pyroute2's NetlinkError is an OSError
        log.warning("cannot list the live conntrack entries: %s", exc)
        return None
    return ids


class CtEventReader:
    """Subscribed to NEW and DESTROY conntrack events of the current network namespace until closed."""

    def __init__(self, clock: Callable[[], float] = wall_clock.wall) -> None:
        self.clock = clock
        self.malformed = 0
        self.lost = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:  # a burst (a scan through the tunnel) must not overflow it: bigger than the default if allowed
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE needs CAP_NET_ADMIN
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        groups = (1 << (NFNLGRP_CONNTRACK_NEW - 1)) | (1 << (NFNLGRP_CONNTRACK_DESTROY - 1))
        self.sock.bind((0, groups))

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, timeout: float) -> list[CtEvent]:
        """Events received within `timeout` seconds (possibly none)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return []
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            self.lost += 1
            log.warning("conntrack events lost (socket buffer full, %d time(s) so far)", self.lost)
            return []
        return split(data, self.clock(), self._bad)

    def _bad(self, why: str, sample: bytes) -> None:
        self.malformed += 1
        log.warning("malformed conntrack event #%d (%s): %s", self.malformed, why, sample.hex())

    def close(self) -> None:
        self.sock.close()
