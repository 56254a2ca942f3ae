"""Which incidents are announced and when, kept in the state database so that a restart loses nothing.

Policy: a new incident of 重要度 高 or 中 is announced; at most one message per `notifications.min_interval`
(what arrives meanwhile is folded into the next message, never dropped); 低 only appears in the digest.
The digest (once a day, if `daily_digest`) lists the last 24 hours.

Durability: `collect()` moves the "last incident seen" cursor in the same transaction that puts the new
incidents in notify_pending; `flush()` writes the folded message to the outbox, empties notify_pending of
exactly those incidents and records the time sent in one transaction. Between the two, the incidents are
in the database, never only in memory. Sending is the outbox's job (appliance.notify.worker).
"""

from __future__ import annotations

import logging
import sqlite3

from appliance.clock import Clock, clinic_time, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.errors import NotFoundError
from appliance.notify.message import Message, compose, digest
from appliance.notify.outbox import enqueue
from appliance.storage import Database
from ids import incidents

log = logging.getLogger(__name__)

CURSOR_KEY = "ids.notify.last_incident"  # the key of the earlier in-memory notifier: upgrades continue
LAST_SENT_KEY = "notify.last_sent"
DIGEST_KEY = "ids.notify.digest_day"
DIGEST_HOUR = 8
FIRST_RUN_WINDOW = 86400.0  # on the very first run only the last day's incidents are news
BATCH = 1000


def _kv(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def _set(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, value))


class Folding:
    """Incidents → notify_pending → one folded message in the outbox per min_interval; and the digest."""

    def __init__(self, db: Database, cfg: MamoriConfig, channels: list[str], clock: Clock = wall) -> None:
        self.db, self.channels, self.clock = db, channels, clock
        self.clinic, self.tz = cfg.clinic.name, cfg.clinic.timezone
        self.interval = parse_duration(cfg.notifications.min_interval)
        self.daily = cfg.notifications.daily_digest

    def collect(self) -> int:
        """New incidents since the cursor: 高/中 go to notify_pending; the cursor moves past all of them."""
        now = self.clock()
        with self.db.transaction() as conn:
            cursor = _kv(conn, CURSOR_KEY)
            if cursor is None:  # first run: history is not news, the last day is
                rows = conn.execute(
                    "SELECT id, severity FROM ids_incidents WHERE last_seen >= ? ORDER BY id DESC LIMIT ?",
                    (now - FIRST_RUN_WINDOW, BATCH),
                ).fetchall()
                top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ids_incidents").fetchone()[0]
            else:
                rows = conn.execute(
                    "SELECT id, severity FROM ids_incidents WHERE id > ? ORDER BY id LIMIT ?",
                    (int(cursor), BATCH),
                ).fetchall()
                top = max((r[0] for r in rows), default=int(cursor))
            news = [(r[0], now) for r in rows if r[1] <= 2]
            conn.executemany("INSERT OR IGNORE INTO notify_pending(incident_id, queued) VALUES (?, ?)", news)
            _set(conn, CURSOR_KEY, str(top))
        return len(news)

    def pending(self) -> list[int]:
        with self.db.connection() as conn:
            return [r[0] for r in conn.execute("SELECT incident_id FROM notify_pending ORDER BY incident_id")]

    def flush(self) -> Message | None:
        """Write one message for everything pending if min_interval has passed since the last one."""
        ids = self.pending()
        if not ids:
            return None
        now = self.clock()
        last = float(self.db.get_kv(LAST_SENT_KEY) or "-inf")
        if 0 <= now - last < self.interval:  # a negative gap: the wall clock was stepped back; send
            return None
        found = []
        for i in ids:
            try:
                found.append(incidents.get(self.db, i))
            except NotFoundError:  # removed by retention meanwhile: nothing to say about it
                log.info("pending incident %d no longer exists", i)
        msg = (
            compose(self.clinic, sorted(found, key=lambda i: (i.severity, -i.last_seen)), self.tz)
            if found
            else None
        )
        with self.db.transaction() as conn:
            if msg is not None:
                enqueue(conn, msg, self.channels, now)
                _set(conn, LAST_SENT_KEY, repr(now))
            conn.executemany("DELETE FROM notify_pending WHERE incident_id = ?", [(i,) for i in ids])
        return msg

    def send_digest(self, now: float | None = None) -> Message | None:
        """The daily digest, once per clinic day from DIGEST_HOUR on."""
        now = self.clock() if now is None else now
        local = clinic_time(now, self.tz)
        day = local.strftime("%Y-%m-%d")
        if not self.daily or local.hour < DIGEST_HOUR or self.db.get_kv(DIGEST_KEY) == day:
            return None
        recent = [i for i in incidents.list_incidents(self.db, limit=1000) if i.last_seen >= now - 86400]
        msg = digest(self.clinic, recent)
        with self.db.transaction() as conn:
            if _kv(conn, DIGEST_KEY) == day:
                return None
            enqueue(conn, msg, self.channels, now)
            _set(conn, DIGEST_KEY, day)
        return msg
