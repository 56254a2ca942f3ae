"""NFLOG decoding: valid packets and hostile/malformed input (everything here came from the network)."""

from __future__ import annotations

import socket
import struct

import pytest

from firewall.droplog import describe
from firewall.nflog import NFULA_PAYLOAD, NFULA_PREFIX, _attr, attributes, decode, parse_packet

IPV4_TCP = bytes.fromhex("4500003c1c4640004006b1e6c0a81432c0a80a0a") + struct.pack("!HH", 51000, 443)
IPV6_UDP = (bytes.fromhex("6000000000081140") + socket.inet_pton(socket.AF_INET6, "2001:db8::66")
            + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 5353, 53))  # fmt: skip


def message(family: int, payload: bytes, prefix: bytes = b"mamori drop guest>lan policy: \0") -> bytes:
    return struct.pack("=BBH", family, 0, 0) + _attr(NFULA_PREFIX, prefix) + _attr(NFULA_PAYLOAD, payload)


def test_decodes_ipv4_tcp() -> None:
    d = decode(message(socket.AF_INET, IPV4_TCP))
    assert (d.src, d.dst, d.proto, d.sport, d.dport) == ("192.168.20.50", "192.168.10.10", "tcp", 51000, 443)
    assert describe(d.prefix) == ("guest>lan", "policy")


def test_decodes_ipv6_udp() -> None:
    d = decode(message(socket.AF_INET6, IPV6_UDP))
    assert (d.src, d.dst, d.proto, d.dport) == ("2001:db8::66", "2001:db8::1", "udp", 53)


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # no nfgenmsg
        struct.pack("=BBH", socket.AF_INET, 0, 0)
        + struct.pack("=HH", 200, NFULA_PAYLOAD)
        + b"x" * 10,  # overlong attr
        message(socket.AF_INET, IPV4_TCP[:12]),  # truncated IPv4 header
        message(socket.AF_INET6, IPV6_UDP[:30]),  # truncated IPv6 header
        message(7, IPV4_TCP),  # unknown family
    ],
)
def test_malformed_messages_raise_value_error(raw: bytes) -> None:
    with pytest.raises((ValueError, struct.error)):
        decode(raw)


def test_attribute_with_zero_length_is_refused() -> None:
    with pytest.raises(ValueError):
        attributes(struct.pack("=HH", 0, 1) + b"\0" * 8)


def test_short_layer4_gives_no_ports() -> None:
    assert parse_packet(socket.AF_INET, IPV4_TCP[:22]) == (
        "192.168.20.50",
        "192.168.10.10",
        "tcp",
        None,
        None,
    )


def test_hostile_prefix_bytes_do_not_break_decoding() -> None:
    d = decode(message(socket.AF_INET, IPV4_TCP, prefix=b"\xff\xfe<script>\0"))
    assert "<script>" in d.prefix and describe(d.prefix)[1] == ""
