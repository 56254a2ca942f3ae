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
from collections.abc import Callable
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


def pool_hosts(address: str) -> list[ipaddress.IPv4Address]:
    """Addresses a device may get: the box's network without the network, broadcast and box addresses."""
    iface = ipaddress.ip_interface(address)
    return [h for h in iface.network.hosts() if h != iface.ip]


def ip6_for(ip4: str, address6: str | None) -> str | None:
    """The ULA address with the same host number as `ip4` (10.99.0.5 -> fd..::5)."""
    if not address6:
        return None
    net6 = ipaddress.ip_interface(address6).network
    host = int(ipaddress.ip_address(ip4)) & 0xFFFF
    return str(net6.network_address + host)


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
                (user, device, key, ip4, ip6_for(ip4, address6), int(box_generated), now),
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
        hosts = pool_hosts(address)
        for h in hosts:
            if str(h) not in used:
                return str(h)
        reusable = sorted(
            (ts, ip) for ip, ts in used.items() if ts < 1e18 and ipaddress.ip_address(ip) in hosts
        )
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
