"""What the pages show of the other areas (IDS incidents and alerts, blocks, VPN, inventory, backups).

The web UI names no table of another area: each answer comes from that area's query module
(ids.queries, vpn.queries, firewall.queries) or its public records API, so a schema change stays in the
area that owns the table. This module only shapes the answers for the templates (Japanese wording).
Everything read from the IDS or the inventory came from the network: templates autoescape it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from appliance.backup.records import backup_status as _backup_status
from appliance.storage import Database
from firewall import queries as fw_queries
from ids import queries as ids_queries
from ids.incidents import STATES
from ids.queries import OPEN_STATES, AlertCounts
from vpn import queries as vpn_queries

log = logging.getLogger(__name__)
__all__ = ["OPEN_STATES", "STATES", "AlertCounts", "Block"]


def alert_counts(db: Database, now: float) -> AlertCounts:
    return ids_queries.alert_counts(db, now)


def incidents(
    db: Database, state: str | None = None, severity: int | None = None, text: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    return ids_queries.find_incidents(db, state, severity, text, limit)


def incident(db: Database, incident_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    return ids_queries.incident_with_alerts(db, incident_id)


def open_incident_count(db: Database) -> dict[int, int]:
    """Open incidents per severity (1 = high)."""
    return ids_queries.open_incident_count(db)


@dataclass(frozen=True)
class Block:
    """One line of 遮断中のアドレス: what the firewall holds, and the incident behind it if the IDS made it."""

    ip: str
    kind: str  # "block" or "quarantine" (a clinic host confined to the web UI)
    reason_ja: str
    ts: float  # when it was blocked
    until: float | None  # when it runs out; None: until someone lifts it
    incident_id: int | None
    source: str


def active_blocks(db: Database, now: float, limit: int = 200) -> list[Block]:
    """Every address the firewall holds now, whoever blocked it (IDS, `mamori fw block`, this UI).

    The firewall owns the record of what is blocked; the IDS is asked only which incident caused a block."""
    held = fw_queries.held_addresses(db, now, limit)
    linked = ids_queries.block_incidents(db, {h.ip: h.since for h in held})
    return [
        Block(h.ip, h.kind, _reason_ja(h.kind, h.source), h.since, h.until, linked.get(h.ip), h.source)
        for h in held
    ]


def _reason_ja(kind: str, source: str) -> str:
    """Why, in Japanese; the stored reason is English for the vendor and may quote a signature."""
    if kind == "quarantine":
        return (
            "不審な通信を検知して自動で隔離（院内の機器）" if source == "ids" else "手動で隔離（院内の機器）"
        )
    return "不審な通信を検知して自動で遮断" if source == "ids" else "手動で遮断"


def is_blocked(db: Database, ip: str, now: float) -> bool:
    """Asked directly: the lists show the newest 200, an address blocked before them must still be found."""
    return fw_queries.is_held(db, ip, now)


def vpn_sessions_open(db: Database, now: float) -> list[dict[str, Any]]:
    return vpn_queries.sessions_open(db, now)


def vpn_windows(db: Database, now: float) -> list[dict[str, Any]]:
    return vpn_queries.windows_ahead(db, now)


def vpn_devices(db: Database) -> list[dict[str, Any]]:
    return vpn_queries.devices(db)


def seen_devices(db: Database) -> list[dict[str, Any]]:
    """Devices the firewall area's inventory has seen (hostnames come from the devices: untrusted)."""
    return fw_queries.seen_devices(db)


def new_device_events(db: Database, since: float) -> list[dict[str, Any]]:
    return fw_queries.new_device_events(db, since)


def backup_status(db: Database) -> Any:
    """appliance.backup's own summary (last good backup, last restore test)."""
    return _backup_status(db)


def vpn_sessions_recent(db: Database, limit: int = 30) -> list[dict[str, Any]]:
    """The latest VPN sessions, ended ones included, with the VPN area's Japanese end reason."""
    return vpn_queries.sessions_recent(db, limit)
