"""The outbox: every message is written to the state database, one row per channel, before it is sent, and
retried with back-off until it is delivered or expires. Survives restarts; a message is sent at least once,
and always under the same id (receivers de-duplicate on it).

Back-off: RETRY_FIRST after the first failure, doubling up to RETRY_MAX. A message that still fails
EXPIRE_AFTER after it was written is given up on (state `expired`, kept for the record and counted as a
channel in trouble). Delivered and expired rows are pruned after KEEP_DONE.

`troubles()` answers "which channel has not been able to deliver for a while, and why", for the dashboard
and `mamori status`. Non-goals: ordering across channels, exactly-once (the stable id lets receivers do it).
"""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.clock import Clock, wall
from appliance.errors import MamoriError
from appliance.notify.message import Message
from appliance.storage import Database

RETRY_FIRST = 30.0
RETRY_MAX = 15 * 60.0
EXPIRE_AFTER = 24 * 3600.0
MIN_ATTEMPTS = 8  # with the back-off, about 45 minutes of trying
KEEP_DONE = 30 * 86400.0
STALE_AFTER = 10 * 60.0  # undelivered for longer than this: the channel is "in trouble"

PENDING, DELIVERED, EXPIRED, CANCELLED = "pending", "delivered", "expired", "cancelled"
CHANNEL_LABELS = {"email": "メール", "webhook": "Webhook", "line": "LINE", "syslog": "syslog"}


def backoff(attempts: int, first: float = RETRY_FIRST, cap: float = RETRY_MAX) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: first, 2×first, 4×first … at most cap."""
    return min(cap, first * 2 ** max(0, attempts - 1))


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(Japanese for clinic staff, English detail for the log) of a failed send."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, MamoriError):
        return exc.text("ja"), detail
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "ログインできません（ユーザー名とパスワードを確認してください）", detail
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return "暗号化（STARTTLS）に対応していないサーバーです", detail
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return "宛先または差出人が受け付けられませんでした", detail
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "相手の証明書を確認できません", detail
    if isinstance(exc, TimeoutError | socket.timeout):
        return "応答がありません", detail
    if isinstance(exc, socket.gaierror):
        return "送信先の名前が見つかりません", detail
    return "接続できません", detail


@dataclass(frozen=True)
class Entry:
    """One message waiting for one channel."""

    row: int
    channel: str
    msg: Message
    created: float
    attempts: int


def enqueue(conn: sqlite3.Connection, msg: Message, channels: Iterable[str], now: float) -> int:
    """Write `msg` for each channel inside the caller's transaction (so it commits with whatever caused it).
    The same message id twice for one channel is written once. Returns the rows written."""
    n = 0
    for ch in channels:
        cur = conn.execute(
            "INSERT OR IGNORE INTO notify_outbox(msg_id, channel, kind, subject, body, severity, created,"
            " next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (msg.id, ch, msg.kind, msg.subject, msg.body, msg.severity, now, now),
        )
        n += cur.rowcount
    return n


class Outbox:
    """The outbox of one state database. Only a channel's sender changes that channel's rows."""

    def __init__(self, db: Database, clock: Clock = wall, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX, expire_after: float = EXPIRE_AFTER) -> None:  # fmt: skip
        self.db, self.clock = db, clock
        self.retry_first, self.retry_max, self.expire_after = retry_first, retry_max, expire_after

    def put(self, msg: Message, channels: Iterable[str]) -> int:
        with self.db.transaction() as conn:
            return enqueue(conn, msg, channels, self.clock())

    def due(self, channel: str, limit: int = 20) -> list[Entry]:
        """The channel's messages whose time has come, oldest first. A next_try further ahead than the
        longest back-off means the wall clock was stepped back: that row is due now."""
        now = self.clock()
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, msg_id, kind, subject, body, severity, created, attempts FROM notify_outbox"
                " WHERE channel = ? AND state = ? AND (next_try <= ? OR next_try > ?) ORDER BY id LIMIT ?",
                (channel, PENDING, now, now + self.retry_max, limit),
            ).fetchall()
        return [Entry(r[0], channel, Message(r[3], r[4], r[5], id=r[1], kind=r[2]), r[6], r[7]) for r in rows]

    def delivered(self, entry: Entry) -> None:
        now = self.clock()
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE notify_outbox SET state = ?, attempts = attempts + 1, last_try = ?, done = ?,"
                " error = '', detail = '' WHERE id = ?",
                (DELIVERED, now, now, entry.row),
            )

    def failed(self, entry: Entry, exc: BaseException) -> float:
        """Record a failed attempt; returns the seconds until the next one (0 when the message expired)."""
        now = self.clock()
        attempts = entry.attempts + 1
        ja, detail = describe_error(exc)
        # Both: a day by the wall clock and enough real tries, so a clock stepped forward by days (a Pi that
        # booted at an old saved time) cannot expire a message at its first failure.
        expired = now - entry.created >= self.expire_after and attempts >= MIN_ATTEMPTS
        wait = 0.0 if expired else backoff(attempts, self.retry_first, self.retry_max)
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE notify_outbox SET state = ?, attempts = ?, last_try = ?, next_try = ?, error = ?,"
                " detail = ?, done = ? WHERE id = ?",
                (EXPIRED if expired else PENDING, attempts, now, now + wait, ja, detail,
                 now if expired else None, entry.row),
            )  # fmt: skip
        return wait

    def next_due(self, channel: str) -> float | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT MIN(next_try) FROM notify_outbox WHERE channel = ? AND state = ?", (channel, PENDING)
            ).fetchone()
        return row[0]

    def cancel_unconfigured(self, configured: Iterable[str]) -> int:
        """Messages for a channel the clinic has removed from the config are not sent any more."""
        names = sorted(set(configured))
        marks = ",".join("?" * len(names))
        with self.db.connection() as conn:
            return conn.execute(
                f"UPDATE notify_outbox SET state = ?, done = ? WHERE state = ? AND channel NOT IN ({marks})",
                (CANCELLED, self.clock(), PENDING, *names),
            ).rowcount

    def prune(self, keep: float = KEEP_DONE) -> int:
        with self.db.connection() as conn:
            return conn.execute(
                "DELETE FROM notify_outbox WHERE state != ? AND done < ?", (PENDING, self.clock() - keep)
            ).rowcount


@dataclass(frozen=True)
class Trouble:
    """A channel that has not delivered for a while: since when, and why (Japanese)."""

    channel: str
    since: float
    error: str
    detail: str  # the last error as the program saw it (English), for the log and the vendor
    expired: int = 0  # messages given up on in the last 24 hours

    @property
    def label(self) -> str:
        return f"{CHANNEL_LABELS.get(self.channel, self.channel)}: {self.error or '送信を待っています'}"


def troubles(db: Database, now: float | None = None, stale: float = STALE_AFTER) -> list[Trouble]:
    """Channels with a message undelivered for more than `stale` seconds, or one given up on in the last 24
    hours and nothing delivered on that channel since."""
    now = wall() if now is None else now
    try:
        with db.connection() as conn:
            late = dict(conn.execute(
                "SELECT channel, MIN(created) FROM notify_outbox WHERE state = ? AND created < ? GROUP BY channel",
                (PENDING, now - stale),
            ).fetchall())  # fmt: skip
            lost = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT channel, COUNT(*), MIN(created) FROM notify_outbox o WHERE state = ? AND done >= ? AND"
                " NOT EXISTS (SELECT 1 FROM notify_outbox d WHERE d.channel = o.channel AND d.state = ?"
                " AND d.done > o.done) GROUP BY channel",
                (EXPIRED, now - 86400, DELIVERED),
            )}  # fmt: skip
            out = []
            for ch in sorted(set(late) | set(lost)):
                n, lost_since = lost.get(ch, (0, None))
                since = min(t for t in (late.get(ch), lost_since) if t is not None)
                out.append(Trouble(ch, since, *_last_error(conn, ch), expired=n))
            return out
    except sqlite3.OperationalError:  # a database not migrated yet (a fresh box): nothing to report
        return []


def _last_error(conn: sqlite3.Connection, channel: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT error, detail FROM notify_outbox WHERE channel = ? AND error != '' ORDER BY last_try DESC LIMIT 1",
        (channel,),
    ).fetchone()
    return (row[0], row[1]) if row else ("", "")


def trouble_text(items: list[Trouble]) -> str | None:
    """「通知を送れていません（メール: 接続できません）」, or None when every channel delivers."""
    if not items:
        return None
    return "通知を送れていません（" + "、".join(t.label for t in items) + "）"
