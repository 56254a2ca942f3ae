"""The VPN users' devices (WireGuard peers) in SQLite, with tunnel addresses allocated from the pool.

A device is one public key of one user. The box's own address (`vpn.address`) defines the IPv4 pool;
a device's IPv6 ULA address uses the same host number in `vpn.address6`, so the two are easy to match in
logs. Devices are revoked, never deleted (see vpn/schema.py). Scope: the table and allocation only;
turning devices into live peers is vpn/render.py + vpn/wg.py.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from appliance.errors import MamoriError, NotFoundError
from appliance.storage import Database
from vpn.keys import check_public_key

log = logging.getLogger(__name__)


class DeviceError(MamoriError):
    code = "vpn.device"


@dataclass(frozen=True)
class Device:
    id: int
    user: str
    device: str
    public_key: str
    ip4: str
    ip6: str | None
    box_generated: bool
    created: float
    revoked: float | None

    @property
    def active(self) -> bool:
        return self.revoked is None


# Control, format (e.g. bidi overrides), unassigned/private and line/paragraph separator characters: a
# device name is printed in the client .conf comment, the web UI and logs, where these could start a new
# line (a forged `[Peer]`), hide text or reorder it.
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def check_device_name(device: str) -> str:
    """A device name a person typed: 1-32 printable characters (Japanese welcome), no control characters."""
    if not device or len(device) > 32:
        raise DeviceError("端末名は1〜32文字で入力してください", "a device name must be 1 to 32 characters")
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in device):
        raise DeviceError(
            "端末名に改行や制御文字は使えません", "a device name must not contain line breaks or control characters",
            code="vpn.device_name",
        )  # fmt: skip
    return device


def _row(r: sqlite3.Row) -> Device:
    return Device(
        id=r["id"], user=r["user"], device=r["device"], public_key=r["public_key"], ip4=r["ip4"],
        ip6=r["ip6"], box_generated=bool(r["box_generated"]), created=r["created"], revoked=r["revoked"],
    )  # fmt: skip


def pool_hosts(address: str) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Addresses a device may get: the box's network without the network, broadcast and box addresses.

    Lazy: a /8 has 16 million hosts (and an IPv6 /64 more than can be counted); the allocator stops at
    the first free one, so it never builds the whole pool."""
    iface = ipaddress.ip_interface(address)
    return (h for h in iface.network.hosts() if h != iface.ip)


def in_pool(ip: str, address: str) -> bool:
    """`ip in pool_hosts(address)` without walking the pool (the same rules as `hosts()`)."""
    iface = ipaddress.ip_interface(address)
    net, addr = iface.network, ipaddress.ip_address(ip)
    if addr not in net or addr == iface.ip:
        return False
    if net.num_addresses <= 2:  # /31, /32 (and /127, /128): every address is a host
        return True
    return addr != net.network_address and (addr.version == 6 or addr != net.broadcast_address)


def ip6_for(ip4: str, address: str, address6: str | None) -> str | None:
    """The ULA address with the same host number as `ip4` in the box's network (10.99.0.5 -> fd..::5).

    Never the box's own IPv6 address: the device whose host number is the box's IPv6 one gets the box's
    IPv4 host number instead (no device has that one, it is the box's). None if `vpn.address6` is too
    small for the host number (the device then has IPv4 only)."""
    if not address6:
        return None
    box4, box6 = ipaddress.ip_interface(address), ipaddress.ip_interface(address6)
    net4, net6 = box4.network, box6.network
    host = int(ipaddress.ip_address(ip4)) - int(net4.network_address)
    candidate = net6.network_address + host
    if candidate == box6.ip:
        candidate = net6.network_address + (int(box4.ip) - int(net4.network_address))
    if candidate not in net6 or candidate in (box6.ip, net6.network_address):
        return None
    return str(candidate)


class DeviceStore:
    """Devices of VPN users. All writes are single transactions, so two admins cannot get one address."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def add(
        self, user: str, device: str, public_key: str, address: str, address6: str | None,
        box_generated: bool = False,
    ) -> Device:  # fmt: skip
        """Register a device; re-issuing (same user and device name) revokes the old key in the same step."""
        key = check_public_key(public_key)
        check_device_name(device)
        now = self.clock()
        with self.db.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM vpn_devices WHERE public_key = ? AND revoked IS NULL AND NOT (user = ? AND device = ?)",
                (key, user, device),
            ).fetchone():
                raise DeviceError("この公開鍵は別の端末で使われています", "this public key is already in use")
            conn.execute(
                "UPDATE vpn_devices SET revoked = ? WHERE user = ? AND device = ? AND revoked IS NULL",
                (now, user, device),
            )
            ip4 = self._allocate(conn, address)
            cur = conn.execute(
                "INSERT INTO vpn_devices(user, device, public_key, ip4, ip6, box_generated, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user, device, key, ip4, ip6_for(ip4, address, address6), int(box_generated), now),
            )
            row = conn.execute("SELECT * FROM vpn_devices WHERE id = ?", (cur.lastrowid,)).fetchone()
        log.info("vpn device %s/%s added with %s", user, device, ip4)
        return _row(row)

    def _allocate(self, conn: sqlite3.Connection, address: str) -> str:
        """A never-used address first; a revoked one (longest revoked) only when the pool is otherwise full."""
        used = {
            r[0]: r[1]
            for r in conn.execute("SELECT ip4, MAX(COALESCE(revoked, 1e18)) FROM vpn_devices GROUP BY ip4")
        }
        for h in pool_hosts(address):
            if str(h) not in used:
                return str(h)
        reusable = sorted((ts, ip) for ip, ts in used.items() if ts < 1e18 and in_pool(ip, address))
        if reusable:
            return reusable[0][1]
        raise DeviceError(
            "VPN のアドレスが足りません（vpn.address のネットワークを広げてください）",
            "the VPN address pool is full (widen the network of vpn.address)",
        )

    def revoke(self, device_id: int) -> Device:
        with self.db.transaction() as conn:
            n = conn.execute(
                "UPDATE vpn_devices SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (self.clock(), device_id),
            ).rowcount
            row = conn.execute("SELECT * FROM vpn_devices WHERE id = ?", (device_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"端末 {device_id} はありません", f"no device {device_id}")
        if n == 0:
            log.info("vpn device %s was already revoked", device_id)
        return _row(row)

    def revoke_user(self, user: str) -> list[Device]:
        """Revoke every device of a user (used when a user is removed from the config for good)."""
        gone = [d for d in self.active(user) if d.user == user]
        for d in gone:
            self.revoke(d.id)
        return gone

    def get(self, device_id: int) -> Device:
        with self.db.connection() as conn:
            row = conn.execute("SELECT * FROM vpn_devices WHERE id = ?", (device_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"端末 {device_id} はありません", f"no device {device_id}")
        return _row(row)

    def active(self, user: str | None = None) -> list[Device]:
        sql = "SELECT * FROM vpn_devices WHERE revoked IS NULL"
        args: tuple[str, ...] = ()
        if user is not None:
            sql += " AND user = ?"
            args = (user,)
        with self.db.connection() as conn:
            return [_row(r) for r in conn.execute(sql + " ORDER BY id", args)]

    def all(self, user: str | None = None) -> list[Device]:
        sql, args = "SELECT * FROM vpn_devices", ()
        if user is not None:
            sql, args = sql + " WHERE user = ?", (user,)
        with self.db.connection() as conn:
            return [_row(r) for r in conn.execute(sql + " ORDER BY id", args)]

    def by_tunnel_ip(self, ip: str) -> Device | None:
        """The active device holding `ip` (v4 or v6): how the portal knows who is knocking."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM vpn_devices WHERE revoked IS NULL AND (ip4 = ? OR ip6 = ?)", (ip, ip)
            ).fetchone()
        return _row(row) if row else None

    def by_public_key(self, key: str) -> Device | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM vpn_devices WHERE revoked IS NULL AND public_key = ?", (key,)
            ).fetchone()
        return _row(row) if row else None
