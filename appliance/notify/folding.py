"""Which incidents are announced and when, kept in the state database so that a restart loses nothing.

Policy: a new incident of 重要度 高 or 中 is announced; at most one message per `notifications.min_interval`
(what arrives meanwhile is folded into the next message, never dropped); 低 only appears in the digest.
The digest (once a day, if `daily_digest`) lists the last 24 hours.

The incidents and their text are the IDS's: ids.daemon hands the folding `ids.announce.NEWS` (a `News`), so
this ground-floor module imports no area.

Durability: `collect()` reads the new incidents through the IDS's queries, then moves the "last incident
seen" cursor in the same transaction that puts them in notify_pending; `flush()` writes the folded message to
the outbox, empties notify_pending of exactly those incidents and records the time sent in one transaction.
Between the two, the incidents are in the database, never only in memory. Sending is the outbox's job (appliance.notify.worker).
"""

from __future__ import annotations

import logging
from typing import Protocol

from appliance.clock import Clock, clinic_time, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.notify.message import Message
from appliance.notify.outbox import enqueue
from appliance.storage import Database

log = logging.getLogger(__name__)

CURSOR_KEY = "ids.notify.last_incident"  # the key of the earlier in-memory notifier: upgrades continue
LAST_SENT_KEY = "notify.last_sent"
DIGEST_KEY = "ids.notify.digest_day"
DIGEST_HOUR = 8
FIRST_RUN_WINDOW = 86400.0  # on the very first run only the last day's incidents are news
BATCH = 1000


class News(Protocol):
    """What the folding asks of the area that finds incidents (ids.announce.IncidentNews)."""

    def severities(
        self, db: Database, after_id: int | None, since: float, limit: int
    ) -> tuple[list[tuple[int, int]], int]:
        """(id, severity 1 high .. 3 low) of the incidents after the cursor (without one: those seen since
        `since`), and the id the cursor may move to."""
        ...

    def message(self, db: Database, ids: list[int], clinic: str, tz: str) -> Message | None:
        """One message for these incidents; None when none of them exists any more."""
        ...

    def digest(self, db: Database, now: float, clinic: str) -> Message:
        """The daily digest of the last 24 hours."""
        ...


class Folding:
    """Incidents → notify_pending → one folded message in the outbox per min_interval; and the digest."""

    def __init__(
        self, db: Database, cfg: MamoriConfig, channels: list[str], news: News, clock: Clock = wall
    ) -> None:
        self.db, self.channels, self.news, self.clock = db, channels, news, clock
        self.clinic, self.tz = cfg.clinic.name, cfg.clinic.timezone
        self.interval = parse_duration(cfg.notifications.min_interval)
        self.daily = cfg.notifications.daily_digest

    def collect(self) -> int:
        """New incidents since the cursor: 高/中 go to notify_pending; the cursor moves past all of them."""
        now = self.clock()
        cursor = self.db.get_kv(CURSOR_KEY)  # only this worker moves it: reading first, then writing, is safe
        after = None if cursor is None else int(cursor)
        rows, top = self.news.severities(self.db, after, now - FIRST_RUN_WINDOW, BATCH)
        news = [(i, now) for i, severity in rows if severity <= 2]
        with self.db.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO notify_pending(incident_id, queued) VALUES (?, ?)", news)
            self.db.set_kv(CURSOR_KEY, str(top), conn=conn)
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
        msg = self.news.message(self.db, ids, self.clinic, self.tz)
        with self.db.transaction() as conn:
            if msg is not None:
                enqueue(conn, msg, self.channels, now)
                self.db.set_kv(LAST_SENT_KEY, repr(now), conn=conn)
            conn.executemany("DELETE FROM notify_pending WHERE incident_id = ?", [(i,) for i in ids])
        return msg

    def send_digest(self, now: float | None = None) -> Message | None:
        """The daily digest, once per clinic day from DIGEST_HOUR on."""
        now = self.clock() if now is None else now
        local = clinic_time(now, self.tz)
        day = local.strftime("%Y-%m-%d")
        if not self.daily or local.hour < DIGEST_HOUR or self.db.get_kv(DIGEST_KEY) == day:
            return None
        msg = self.news.digest(self.db, now, self.clinic)
        with self.db.transaction() as conn:
            if self.db.get_kv(DIGEST_KEY, conn) == day:
                return None
            enqueue(conn, msg, self.channels, now)
            self.db.set_kv(DIGEST_KEY, day, conn=conn)
        return msg
