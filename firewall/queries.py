"""Plain values about the firewall's records for other areas (metrics, web UI, monthly report).

Read from the records the firewall keeps of why an address is in a live set (fw_entries, re-seeded into
the kernel after every rebuild): no netlink, so it answers the same without root and is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.storage import Database


def held_entries(db: Database, now: float) -> dict[str, int]:
    """Addresses blocked and quarantined now (not yet run out): {"block": n, "quarantine": m}."""
    out = {"block": 0, "quarantine": 0}
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT kind, COUNT(*) FROM fw_entries WHERE expires_at IS NULL OR expires_at > ? GROUP BY kind",
            (now,),
        ).fetchall()
    for kind, count in rows:
        if kind in out:
            out[kind] = int(count)
    return out


# -- what is blocked now, and what was blocked (for the web UI and the monthly report) ------------------
# The firewall is the one owner of "who is blocked": fw_entries says why and until when for every address
# in a live set, whoever put it there (the IDS, `mamori fw block`, the web UI). The IDS keeps only which
# incident caused a block (ids.queries.block_incidents), never a second list of blocked addresses.


@dataclass(frozen=True)
class HeldAddress:
    """An address in the block or quarantine set, as fw_entries records it."""

    kind: str  # "block" (everything from and to it dropped) or "quarantine" (a clinic host confined)
    ip: str
    reason: str  # English, for the support vendor; may quote an IDS signature (came from the network)
    source: str  # who put it there: "ids", "cli", "web", ...
    since: float  # wall time it was (last) put in the set
    until: float | None  # wall time it runs out; None: until someone lifts it


def held_addresses(db: Database, now: float, limit: int = 200) -> list[HeldAddress]:
    """Blocked and quarantined addresses not yet run out, newest first."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT kind, ip, reason, source, created_at, expires_at FROM fw_entries"
            " WHERE expires_at IS NULL OR expires_at > ? ORDER BY created_at DESC, ip LIMIT ?",
            (now, limit),
        ).fetchall()
    return [HeldAddress(r[0], r[1], r[2], r[3], float(r[4]), r[5]) for r in rows]


def is_held(db: Database, ip: str, now: float, kind: str = "block") -> bool:
    """Whether `ip` is blocked (or quarantined) now, however many other addresses are."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM fw_entries WHERE ip = ? AND kind = ? AND (expires_at IS NULL OR expires_at > ?)",
            (ip, kind, now),
        ).fetchone()
    return row is not None


@dataclass(frozen=True)
class BlockEvent:
    """One block from the firewall's append-only trail (fw_history)."""

    ts: float
    ip: str
    detail: str  # the reason given when it was blocked (English)
    source: str


def blocks_between(db: Database, start: float, end: float) -> list[BlockEvent]:
    """Every block made in [start, end), oldest first (renewals of a block included)."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT ts, ip, detail, source FROM fw_history WHERE action = 'block' AND ts >= ? AND ts < ?"
            " ORDER BY ts, id",
            (start, end),
        ).fetchall()
    return [BlockEvent(r[0], r[1], r[2], r[3]) for r in rows]


# -- the device inventory (firewall.inventory writes it) --------------------------------------------------
# Rows as plain dicts of the inventory's columns (mac, ip, zone, interface, hostname, vendor, first_seen,
# last_seen; events: id, ts, mac, kind, message_ja, message_en). Hostnames come from the devices: untrusted.


def seen_devices(db: Database, limit: int = 5000) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute("SELECT * FROM fw_devices ORDER BY zone, ip LIMIT ?", (limit,)).fetchall()
    return [dict(r) for r in rows]


def new_device_events(db: Database, since: float, limit: int = 20) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM fw_device_events WHERE kind = 'new_device' AND ts >= ? ORDER BY id DESC LIMIT ?",
            (since, limit),
        ).fetchall()
    return [dict(r) for r in rows]
