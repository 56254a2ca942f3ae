"""Plain values about the IDS for other areas: counts for the metrics, incidents for the web UI and reports.

Each function reads what the IDS already keeps; none writes. Severity names follow ids.explain.IMPORTANCE
(Suricata 1 = high 高, 2 = medium 中, 3 and above = low 低). Cost matters: a scrape runs the counts every
15 s or so against a database that may hold a million alerts, so none of them scans ids_alerts — the
alert totals are the running counters the ingestion keeps (ids.ingest), and open incidents are one
grouped read of ids_incidents.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from appliance.storage import Database
from appliance.subsystem import Context
from ids.incidents import ACKNOWLEDGED, OPEN, STATES
from ids.ingest import STATS_KEY, severity_counter
from ids.supervisor import read_status

SEVERITY_NAMES: dict[int, str] = {1: "high", 2: "medium", 3: "low"}


def severity_name(severity: int) -> str:
    return SEVERITY_NAMES.get(min(max(int(severity), 1), 3), "low")


def alert_totals(db: Database) -> dict[str, int]:
    """Alerts stored since the box was set up, by severity name (every name present, 0 when none)."""
    with db.connection() as conn:
        counters = dict(
            conn.execute("SELECT name, value FROM ids_counters WHERE name LIKE 'alerts_severity_%'")
        )
    return {name: int(counters.get(severity_counter(sev), 0)) for sev, name in SEVERITY_NAMES.items()}


@dataclass(frozen=True)
class OpenIncidents:
    count: int
    oldest_first_seen: float | None  # when the oldest still-open incident began (None: none open)


def open_incidents(db: Database) -> dict[str, OpenIncidents]:
    """Incidents in state 未対応 by severity name (every name present). Read from the partial index
    ids_incidents_open_severity: its condition (OPEN_WHERE, below) is named word for word, then narrowed."""
    out = {name: OpenIncidents(0, None) for name in SEVERITY_NAMES.values()}
    with db.connection() as conn:
        rows = conn.execute(
            f"SELECT severity, COUNT(*), MIN(first_seen) FROM ids_incidents WHERE {OPEN_WHERE} AND state = ?"
            " GROUP BY severity",
            (OPEN,),
        ).fetchall()
    for severity, count, oldest in rows:
        name = severity_name(severity)
        prev = out[name]
        first = min(t for t in (prev.oldest_first_seen, oldest) if t is not None)
        out[name] = OpenIncidents(prev.count + count, first)
    return out


@dataclass(frozen=True)
class EngineState:
    running: bool  # Suricata's pid as published by the supervisor is alive
    restarts: int  # restarts after a crash counted by the supervisor since the daemon started it
    kernel_packets: int | None  # from Suricata's last stats record (its own counters, reset when it restarts)
    kernel_drops: int | None


def engine_state(ctx: Context) -> EngineState:
    status = read_status(ctx)
    running = status.state == "running" and status.pid is not None and os.path.exists(f"/proc/{status.pid}")
    stats_text = ctx.db.get_kv(STATS_KEY)
    stats = json.loads(stats_text) if stats_text else {}
    return EngineState(running, status.restarts, stats.get("kernel_packets"), stats.get("kernel_drops"))


# -- alerts and incidents for the web UI and the monthly report --------------------------------------------
# Rows are plain dicts of the IDS's columns (ids.schema: ids_incidents, ids_alerts); everything in them
# came from the network, so pages autoescape it. Reads are bounded (LIMIT, the indexed time columns) so a
# page stays fast with a million stored alerts.

OPEN_STATES: tuple[str, ...] = (OPEN, ACKNOWLEDGED)  # what the pages call "not finished"
# OPEN_STATES as SQL, word for word the condition of the partial indexes ids_incidents_open and
# ids_incidents_open_severity (ids.schema): with it, the open incidents are read newest first and counted
# from those indexes; with bound parameters SQLite would not use them and would sort the whole table.
OPEN_WHERE = "state IN ('未対応', '確認済み')"


@dataclass(frozen=True)
class AlertCounts:
    last_24h: int
    last_7d: int
    hourly: list[int]  # 24 values, oldest first
    daily: list[int]  # 7 values, oldest first


def alert_counts(db: Database, now: float) -> AlertCounts:
    """Alerts per hour of the last 24 hours and per day of the last 7 days."""
    hour0 = int(now // 3600) * 3600 - 23 * 3600
    hourly = [0] * 24
    day0 = now - 7 * 86400
    daily = [0] * 7
    with db.connection() as conn:
        for bucket, n in conn.execute(
            "SELECT CAST((ts - ?) / 3600 AS INTEGER), COUNT(*) FROM ids_alerts WHERE ts >= ? AND ts < ? + 3600 GROUP BY 1",
            (hour0, hour0, int(now // 3600) * 3600),
        ):
            if 0 <= bucket < 24:
                hourly[bucket] = n
        for bucket, n in conn.execute(
            "SELECT CAST((ts - ?) / 86400 AS INTEGER), COUNT(*) FROM ids_alerts WHERE ts >= ? GROUP BY 1",
            (day0, day0),
        ):
            if 0 <= bucket < 7:
                daily[bucket] = n
    return AlertCounts(last_24h=sum(hourly), last_7d=sum(daily), hourly=hourly, daily=daily)


def find_incidents(
    db: Database, state: str | None = None, severity: int | None = None, text: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    """Incidents, newest activity first. state: "open" (未対応 or 確認済み), one of STATES, or None (all)."""
    sql, args = "SELECT * FROM ids_incidents WHERE 1=1", []
    if state == "open":
        sql += f" AND {OPEN_WHERE}"
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
    with db.connection() as conn:
        return [dict(r) for r in conn.execute(sql, args)]


def incident_with_alerts(
    db: Database, incident_id: int, limit: int = 50
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """One incident and its latest alerts, or None when there is no such incident."""
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM ids_incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            return None
        alerts = conn.execute(
            "SELECT * FROM ids_alerts WHERE incident_id = ? ORDER BY ts DESC LIMIT ?", (incident_id, limit)
        ).fetchall()
    return dict(row), [dict(a) for a in alerts]


def open_incident_count(db: Database) -> dict[int, int]:
    """Incidents not finished (未対応 or 確認済み) per Suricata severity (1 = high), counted from the small
    partial index ids_incidents_open_severity (a box that nobody answers keeps every open incident)."""
    with db.connection() as conn:
        rows = conn.execute(
            f"SELECT severity, COUNT(*) FROM ids_incidents WHERE {OPEN_WHERE} GROUP BY severity"
        ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def incidents_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Incidents active at some time in [start, end), in the order they began."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM ids_incidents WHERE last_seen >= ? AND first_seen < ? ORDER BY first_seen, id",
            (start, end),
        ).fetchall()
    return [dict(r) for r in rows]


def incident_row(db: Database, incident_id: int) -> dict[str, Any] | None:
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM ids_incidents WHERE id = ?", (incident_id,)).fetchone()
    return dict(row) if row else None


def alert_times(db: Database, start: float, end: float) -> list[float]:
    """The time of every alert stored in [start, end) (for per-day counts)."""
    with db.connection() as conn:
        return [
            r[0] for r in conn.execute("SELECT ts FROM ids_alerts WHERE ts >= ? AND ts < ?", (start, end))
        ]


def block_incidents(db: Database, blocks: dict[str, float]) -> dict[str, int]:
    """Which incident caused each block, for blocks the firewall reports ({ip: since}, its fw_entries).

    The IDS keeps only that link (ids_blocks, written by ids.response when it blocks for an incident); the
    firewall owns what is blocked. A link counts only for the block it was made with (recorded at or after
    the firewall's `since` and not undone): a later block of the same address by hand is not the incident's."""
    if not blocks:
        return {}
    out: dict[str, int] = {}
    with db.connection() as conn:
        for ip, since in blocks.items():
            row = conn.execute(
                "SELECT incident_id FROM ids_blocks WHERE ip = ? AND incident_id IS NOT NULL AND undone_at IS NULL"
                " AND ts >= ? ORDER BY ts DESC, id DESC LIMIT 1",
                (ip, since),
            ).fetchone()
            if row is not None:
                out[ip] = int(row[0])
    return out


def incidents_after(db: Database, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Incidents with id > `after_id`, oldest first, as they are now (the SIEM forwarder's source)."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, sid, src_ip, dest_ip, first_seen, severity, signature, category FROM ids_incidents"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def alerts_after(
    db: Database, after_id: int, max_severity: int, limit: int = 500, window: int = 5000
) -> tuple[list[dict[str, Any]], int]:
    """Alerts with id > `after_id` and Suricata severity <= `max_severity` (1 = high only), oldest first,
    looking at most `window` ids ahead; returns them and the id the reader may move its cursor to (the last
    row returned when `limit` was reached, else the end of the window or the newest alert). The window
    keeps a reader of high alerts from scanning a million low ones on every call."""
    with db.connection() as conn:
        newest = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM ids_alerts").fetchone()[0])
        upto = min(after_id + window, newest)
        rows = conn.execute(
            "SELECT id, incident_id, ts, sid, rev, signature, category, severity, src_ip, src_port, dest_ip,"
            " dest_port, proto FROM ids_alerts WHERE id > ? AND id <= ? AND severity <= ? ORDER BY id LIMIT ?",
            (after_id, upto, max_severity, limit),
        ).fetchall()
    out = [dict(r) for r in rows]
    return out, (out[-1]["id"] if len(out) == limit else max(upto, after_id))


def incident_severities(
    db: Database, *, after_id: int | None, since: float, limit: int
) -> tuple[list[tuple[int, int]], int]:
    """(id, Suricata severity) of new incidents and the id a reader may move its cursor to.

    With a cursor (`after_id`), the incidents after it, oldest first; without one (a reader's first run), the
    newest ones last seen at or after `since` — history is not news — and the newest id overall, so that the
    reader starts after everything that exists. The notifier's source (appliance.notify.folding)."""
    with db.connection() as conn:
        if after_id is None:
            rows = conn.execute(
                "SELECT id, severity FROM ids_incidents WHERE last_seen >= ? ORDER BY id DESC LIMIT ?",
                (since, limit),
            ).fetchall()
            top = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM ids_incidents").fetchone()[0])
        else:
            rows = conn.execute(
                "SELECT id, severity FROM ids_incidents WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
            top = max((int(r[0]) for r in rows), default=after_id)
    return [(int(r[0]), int(r[1])) for r in rows], top


def last_ids(db: Database) -> tuple[int, int]:
    """The newest (incident id, alert id), 0 when none: where a forwarder switched on now starts."""
    with db.connection() as conn:
        inc = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ids_incidents").fetchone()[0]
        alert = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ids_alerts").fetchone()[0]
    return int(inc), int(alert)
