"""Read-only views of the other areas' state for the pages (IDS incidents and alerts, blocks, VPN).

Why here and not in each page: the other areas are built at the same time as the web UI. Each function
returns None when the area's tables are not in this build, so a page can say "まだ利用できません" honestly
instead of showing made-up numbers. Queries are bounded (LIMIT, indexed time ranges) so that pages stay
fast with a million stored alerts. Everything read from ids_* came from the network: templates autoescape it.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.storage import Database

log = logging.getLogger(__name__)
OPEN_STATES = ("未対応", "確認済み")
STATES = ("未対応", "確認済み", "解決済み")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        is not None
    )


@dataclass(frozen=True)
class AlertCounts:
    last_24h: int
    last_7d: int
    hourly: list[int]  # 24 values, oldest first
    daily: list[int]  # 7 values, oldest first


def alert_counts(db: Database, now: float) -> AlertCounts | None:
    with db.connection() as conn:
        if not _has_table(conn, "ids_alerts"):
            return None
        hour0 = int(now // 3600) * 3600 - 23 * 3600
        hourly = [0] * 24
        for bucket, n in conn.execute(
            "SELECT CAST((ts - ?) / 3600 AS INTEGER), COUNT(*) FROM ids_alerts WHERE ts >= ? AND ts < ? + 3600 GROUP BY 1",
            (hour0, hour0, int(now // 3600) * 3600),
        ):
            if 0 <= bucket < 24:
                hourly[bucket] = n
        day0 = now - 7 * 86400
        daily = [0] * 7
        for bucket, n in conn.execute(
            "SELECT CAST((ts - ?) / 86400 AS INTEGER), COUNT(*) FROM ids_alerts WHERE ts >= ? GROUP BY 1",
            (day0, day0),
        ):
            if 0 <= bucket < 7:
                daily[bucket] = n
    return AlertCounts(last_24h=sum(hourly), last_7d=sum(daily), hourly=hourly, daily=daily)


def incidents(
    db: Database,
    state: str | None = None,
    severity: int | None = None,
    text: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "ids_incidents"):
            return None
        sql, args = "SELECT * FROM ids_incidents WHERE 1=1", []
        if state == "open":
            sql += " AND state IN (?, ?)"
            args += list(OPEN_STATES)
        elif state in STATES:
            sql += " AND state = ?"
            args.append(state)
        if severity in (1, 2, 3):
            sql += " AND severity = ?"
            args.append(severity)
        if text:
            sql += " AND (instr(signature, ?) > 0 OR src_ip = ? OR dest_ip = ?)"
            args += [text, text, text]
        sql += " ORDER BY last_seen DESC LIMIT ?"
        args.append(limit)
        return [dict(r) for r in conn.execute(sql, args)]


def incident(db: Database, incident_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "ids_incidents"):
            return None
        row = conn.execute("SELECT * FROM ids_incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            return None
        alerts = conn.execute(
            "SELECT * FROM ids_alerts WHERE incident_id = ? ORDER BY ts DESC LIMIT 50", (incident_id,)
        ).fetchall()
    return dict(row), [dict(a) for a in alerts]


def open_incident_count(db: Database) -> dict[int, int] | None:
    """Open incidents per severity (1 = high)."""
    with db.connection() as conn:
        if not _has_table(conn, "ids_incidents"):
            return None
        rows = conn.execute(
            "SELECT severity, COUNT(*) FROM ids_incidents WHERE state IN (?, ?) GROUP BY severity",
            OPEN_STATES,
        ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def active_blocks(db: Database, now: float, limit: int = 200) -> list[dict[str, Any]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "ids_blocks"):
            return None
        rows = conn.execute(
            "SELECT * FROM ids_blocks WHERE undone_at IS NULL AND (timeout_s = 0 OR ts + timeout_s > ?)"
            " ORDER BY ts DESC LIMIT ?",
            (now, limit),
        ).fetchall()
    return [_block_row(dict(r)) for r in rows]


def _block_row(row: dict[str, Any]) -> dict[str, Any]:
    """Say in Japanese why and until when; the stored reason is English and may quote a signature."""
    manual = str(row.get("reason", "")).startswith("manual")
    row["reason_ja"] = "手動で遮断" if manual else "不審な通信を検知して自動で遮断"
    row["until"] = row["ts"] + row["timeout_s"] if row.get("timeout_s") else None
    return row


def vpn_sessions_open(db: Database, now: float) -> list[dict[str, Any]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "vpn_sessions"):
            return None
        rows = conn.execute(
            "SELECT * FROM vpn_sessions WHERE ended IS NULL AND expires > ? ORDER BY started DESC LIMIT 100",
            (now,),
        ).fetchall()
    return [dict(r) for r in rows]


def vpn_windows(db: Database, now: float) -> list[dict[str, Any]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "vpn_windows"):
            return None
        rows = conn.execute(
            "SELECT * FROM vpn_windows WHERE cancelled IS NULL AND ends > ? ORDER BY starts LIMIT 100", (now,)
        ).fetchall()
    return [dict(r) for r in rows]


def vpn_devices(db: Database) -> list[dict[str, Any]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "vpn_devices"):
            return None
        rows = conn.execute("SELECT * FROM vpn_devices ORDER BY user, created LIMIT 1000").fetchall()
    return [dict(r) for r in rows]


def seen_devices(db: Database) -> list[dict[str, Any]] | None:
    """Devices the firewall area's inventory has seen (hostnames come from the devices: untrusted)."""
    with db.connection() as conn:
        if not _has_table(conn, "fw_devices"):
            return None
        rows = conn.execute("SELECT * FROM fw_devices ORDER BY zone, ip LIMIT 5000").fetchall()
    return [dict(r) for r in rows]


def new_device_events(db: Database, since: float) -> list[dict[str, Any]] | None:
    with db.connection() as conn:
        if not _has_table(conn, "fw_device_events"):
            return None
        rows = conn.execute(
            "SELECT * FROM fw_device_events WHERE kind = 'new_device' AND ts >= ? ORDER BY id DESC LIMIT 20",
            (since,),
        ).fetchall()
    return [dict(r) for r in rows]


def backup_status(db: Database) -> Any | None:
    """appliance.backup's own summary (last good backup, last restore test), if that area is built in."""
    try:
        from appliance.backup.records import backup_status as status
    except ModuleNotFoundError:
        return None
    with db.connection() as conn:
        if not _has_table(conn, "backup_runs"):
            return None
    return status(db)


def vpn_sessions_recent(db: Database, limit: int = 30) -> list[dict[str, Any]] | None:
    """The latest VPN sessions, ended ones included, with the VPN area's Japanese end reason."""
    with db.connection() as conn:
        if not _has_table(conn, "vpn_sessions"):
            return None
        rows = [
            dict(r) for r in conn.execute("SELECT * FROM vpn_sessions ORDER BY id DESC LIMIT ?", (limit,))
        ]
    try:
        from vpn.sessions import END_REASON_JA
    except ModuleNotFoundError:
        END_REASON_JA = {}
    for r in rows:
        r["end_reason_ja"] = END_REASON_JA.get(r["end_reason"], r["end_reason"]) if r["ended"] else "接続中"
    return rows
