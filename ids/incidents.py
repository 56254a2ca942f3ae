"""Incidents: repeats of one alert (same sid, source and destination within ids.incident_window) grouped
into one thing a person handles, with a count, first/last seen, a state 未対応 → 確認済み → 解決済み, and notes.

Staff see incidents, not alerts: a scan that fires 500 times is one line. A repeat after the window
has passed since the last one opens a new incident, so an old, resolved incident is never silently reopened.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from appliance.audit import AuditLog
from appliance.clock import show, wall
from appliance.errors import MamoriError, NotFoundError
from appliance.storage import Database
from ids.alerts import Alert
from ids.explain import Explanation, explain

OPEN, ACKNOWLEDGED, RESOLVED = "未対応", "確認済み", "解決済み"
STATES: tuple[str, ...] = (OPEN, ACKNOWLEDGED, RESOLVED)
STATE_EN: dict[str, str] = {OPEN: "open", ACKNOWLEDGED: "acknowledged", RESOLVED: "resolved"}
STATE_FROM_EN: dict[str, str] = {v: k for k, v in STATE_EN.items()}


class IncidentError(MamoriError):
    code = "ids.incident"


@dataclass(frozen=True)
class Incident:
    id: int
    sid: int
    src_ip: str
    dest_ip: str
    first_seen: float
    last_seen: float
    count: int
    severity: int
    signature: str
    category: str
    state: str
    notes: str

    @property
    def explanation(self) -> Explanation:
        return explain(self.sid, self.category, self.severity, self.signature)


_COLUMNS = (
    "id, sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature, category, state, notes"
)


def record_alert(
    conn: sqlite3.Connection, alert: Alert, window_s: float, event_id: int | None = None
) -> tuple[int, bool]:
    """Store one alert and attach it to its incident (inside the caller's transaction).

    Returns (incident id, whether the incident is new)."""
    return record_alerts(conn, [(alert, event_id)], window_s)[0]


def _find_open(conn: sqlite3.Connection, alert: Alert, window_s: float) -> tuple[int, float] | None:
    row = conn.execute(
        "SELECT id, last_seen FROM ids_incidents WHERE sid = ? AND src_ip = ? AND dest_ip = ? AND last_seen >= ?"
        " AND state != ? ORDER BY last_seen DESC LIMIT 1",
        (alert.sid, alert.src.ip, alert.dst.ip, alert.ts - window_s, RESOLVED),
    ).fetchone()
    return (row[0], row[1]) if row else None


def _new_incident(conn: sqlite3.Connection, alert: Alert) -> int:
    cur = conn.execute(
        "INSERT INTO ids_incidents(sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
        " category) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        (
            alert.sid,
            alert.src.ip,
            alert.dst.ip,
            alert.ts,
            alert.ts,
            alert.severity,
            alert.signature,
            alert.category,
        ),
    )
    return int(cur.lastrowid or 0)


def record_alerts(
    conn: sqlite3.Connection, items: list[tuple[Alert, int | None]], window_s: float
) -> list[tuple[int, bool]]:
    """Store a batch of alerts and group them into incidents, with one lookup and one update per incident
    (a scan is hundreds of alerts of one incident per batch). Returns (incident id, new) per alert."""
    cache: dict[tuple[int, str, str], tuple[int, float]] = {}
    agg: dict[int, list] = {}  # incident id -> [added count, first, last, min severity]
    results: list[tuple[int, bool]] = []
    rows = []
    for alert, event_id in items:
        key = (alert.sid, alert.src.ip, alert.dst.ip)
        hit = cache.get(key)
        if hit is None or hit[1] < alert.ts - window_s:
            hit = _find_open(conn, alert, window_s) if hit is None else None
        new = hit is None
        if hit is None:
            hit = (_new_incident(conn, alert), alert.ts)
        incident_id = hit[0]
        cache[key] = (incident_id, max(hit[1], alert.ts))
        a = agg.setdefault(incident_id, [0, alert.ts, alert.ts, alert.severity])
        a[0] += 1
        a[1], a[2], a[3] = min(a[1], alert.ts), max(a[2], alert.ts), min(a[3], alert.severity)
        results.append((incident_id, new))
        rows.append((event_id, incident_id, alert.ts, alert.sid, alert.rev, alert.signature, alert.category,
                     alert.severity, alert.src.ip, alert.src.port, alert.dst.ip, alert.dst.port, alert.proto,
                     json.dumps(alert.detail(), ensure_ascii=False)))  # fmt: skip
    conn.executemany(
        "UPDATE ids_incidents SET count = count + ?, first_seen = MIN(first_seen, ?), last_seen = MAX(last_seen, ?),"
        " severity = MIN(severity, ?) WHERE id = ?",
        [(*a, incident_id) for incident_id, a in agg.items()],
    )
    conn.executemany(
        "INSERT INTO ids_alerts(event_id, incident_id, ts, sid, rev, signature, category, severity, src_ip,"
        " src_port, dest_ip, dest_port, proto, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return results


def _row(row: sqlite3.Row) -> Incident:
    return Incident(*tuple(row))


def get(db: Database, incident_id: int) -> Incident:
    with db.connection() as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM ids_incidents WHERE id = ?", (incident_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"インシデント {incident_id} はありません", f"no incident {incident_id}")
    return _row(row)


def list_incidents(db: Database, state: str | None = None, limit: int = 50) -> list[Incident]:
    """Newest first; optionally only one state."""
    sql = f"SELECT {_COLUMNS} FROM ids_incidents"
    args: tuple = ()
    if state is not None:
        sql += " WHERE state = ?"
        args = (state,)
    sql += " ORDER BY last_seen DESC, id DESC LIMIT ?"
    with db.connection() as conn:
        return [_row(r) for r in conn.execute(sql, (*args, limit))]


def set_state(
    db: Database, incident_id: int, state: str, actor: str, note: str = "", source: str = "cli",
    now: float | None = None, tz: str | None = None,
) -> Incident:  # fmt: skip
    """Move an incident to 未対応/確認済み/解決済み (English names accepted), with an optional note; audited.
    The note is stamped with the time in the clinic's zone `tz` (clinic.timezone)."""
    state = STATE_FROM_EN.get(state, state)
    if state not in STATES:
        raise IncidentError(
            f"状態「{state}」は使えません（未対応・確認済み・解決済み）",
            f"unknown state '{state}' (open, acknowledged, resolved)",
        )
    stamp = show(wall() if now is None else now, tz, "%Y-%m-%d %H:%M")
    with db.transaction() as conn:
        row = conn.execute("SELECT state, notes FROM ids_incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"インシデント {incident_id} はありません", f"no incident {incident_id}")
        notes = row[1]
        if note:
            notes = (notes + "\n" if notes else "") + f"[{stamp} {actor}] {note[:2000]}"
        conn.execute(
            "UPDATE ids_incidents SET state = ?, notes = ? WHERE id = ?", (state, notes, incident_id)
        )
        AuditLog(db).record(
            actor, "ids.incident.state", {"incident": incident_id, "from": row[0], "to": state, "note": note},
            source=source, conn=conn,
        )  # fmt: skip
    return get(db, incident_id)


AUTO_CLOSE_NOTE = "自動で終了（{days}日間 新しい検知なし）"
AUTO_CLOSE_CHUNK = 500


def auto_close(
    db: Database, now: float, days: int, tz: str | None = None, max_rounds: int = 1000
) -> list[int]:
    """Close (解決済み) every 未対応 incident with no new alert for `days` days, with a note saying so and
    one audit entry per chunk. Why: a clinic that never answers would otherwise keep every incident open
    for ever, on the dashboard and in the database (open ones are never pruned). A repeat of the alert later
    opens a new incident (record_alerts never reopens a resolved one). Returns the ids closed, oldest first.

    Reads the open incidents from the partial index ids_incidents_open (its condition word for word)."""
    cutoff = now - days * 86400
    note = AUTO_CLOSE_NOTE.format(days=days)
    stamp = show(now, tz, "%Y-%m-%d %H:%M")
    closed: list[int] = []
    for _ in range(max_rounds):
        with db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, notes FROM ids_incidents WHERE state IN ('未対応', '確認済み') AND state = ?"
                " AND last_seen < ? ORDER BY last_seen LIMIT ?",
                (OPEN, cutoff, AUTO_CLOSE_CHUNK),
            ).fetchall()
            if not rows:
                break
            conn.executemany(
                "UPDATE ids_incidents SET state = ?, notes = ? WHERE id = ?",
                [(RESOLVED, (r[1] + "\n" if r[1] else "") + f"[{stamp} system] {note}", r[0]) for r in rows],
            )
            ids = [int(r[0]) for r in rows]
            AuditLog(db).record(
                "system", "ids.incident.auto_closed",
                {"incidents": ids, "from": OPEN, "to": RESOLVED, "days": days, "note": note},
                source="retention", conn=conn,
            )  # fmt: skip
        closed += ids
        if len(rows) < AUTO_CLOSE_CHUNK:
            break
    return closed
