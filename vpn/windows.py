"""Vendor maintenance windows: a vendor is off by default and may sign in only inside a window the clinic
approved (from-to, or "the next N hours"), with the reason and the target systems written down.

Why a table and not the config: a window is a one-off approval with an approver and a reason (MHLW
guideline 6.0 asks for remote maintenance to be approved, logged and checked against the work plan),
and it must end by itself: the daemon's `vpn-expiry` worker cuts every session of a window at its end.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import MamoriError, NotFoundError
from appliance.storage import Database

log = logging.getLogger(__name__)

MAX_WINDOW_S = 24 * 3600


class WindowError(MamoriError):
    code = "vpn.window"


@dataclass(frozen=True)
class Window:
    id: int
    user: str
    starts: float
    ends: float
    reason: str
    targets: tuple[str, ...]
    approved_by: str
    created: float
    cancelled: float | None
    closed: float | None

    def open_at(self, now: float) -> bool:
        # A window the box has closed stays closed: a clock stepped back must not re-open it.
        return self.cancelled is None and self.closed is None and self.starts <= now < self.ends

    def over_at(self, now: float) -> bool:
        return self.cancelled is not None or now >= self.ends


def _row(r: sqlite3.Row) -> Window:
    return Window(
        r["id"], r["user"], r["starts"], r["ends"], r["reason"], tuple(json.loads(r["targets"])),
        r["approved_by"], r["created"], r["cancelled"], r["closed"],
    )  # fmt: skip


class WindowStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def approve(
        self, user: str, starts: float, ends: float, reason: str, targets: list[str], approved_by: str
    ) -> Window:
        """Record the clinic's approval. A reason and at least one target are required: they are what the
        session report is checked against afterwards. Nobody approves his own window: the approval is the
        clinic's check on the vendor (who may hold a web account with the VPN area granted), so an approver
        named like the VPN user is refused whatever the caller."""
        if approved_by.strip() == user.strip():
            raise WindowError(
                "自分の作業の時間帯を自分で承認することはできません。医院の管理者に承認を頼んでください",
                "nobody may approve his own maintenance window; ask the clinic's administrator",
                code="vpn.window_self_approval",
            )
        if not reason.strip() or len(reason) > 200:
            raise WindowError(
                "作業の理由を200文字以内で入力してください", "give the reason (up to 200 characters)"
            )
        if not targets or any(not t.strip() or len(t) > 64 for t in targets):
            raise WindowError("作業対象のシステムを入力してください", "name the target systems")
        if ends <= starts or ends - starts > MAX_WINDOW_S:
            raise WindowError(
                "終了は開始より後、長さは24時間以内にしてください",
                "the end must be after the start and the window at most 24 hours long",
            )
        if ends <= self.clock():
            raise WindowError("終了時刻が過ぎています", "the window ends in the past")
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO vpn_windows(user, starts, ends, reason, targets, approved_by, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user,
                    starts,
                    ends,
                    reason.strip(),
                    json.dumps(targets, ensure_ascii=False),
                    approved_by,
                    self.clock(),
                ),
            )
            row = conn.execute("SELECT * FROM vpn_windows WHERE id = ?", (cur.lastrowid,)).fetchone()
        log.info("maintenance window %d approved for %s by %s", row["id"], user, approved_by)
        return _row(row)

    def approve_next(
        self, user: str, hours: float, reason: str, targets: list[str], approved_by: str
    ) -> Window:
        now = self.clock()
        return self.approve(user, now, now + hours * 3600, reason, targets, approved_by)

    def cancel(self, window_id: int) -> Window:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE vpn_windows SET cancelled = ? WHERE id = ? AND cancelled IS NULL",
                (self.clock(), window_id),
            )
        return self.get(window_id)

    def mark_closed(self, window_id: int) -> None:
        """The expiry worker has cut everything of this window (so it is not cut again)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE vpn_windows SET closed = ? WHERE id = ? AND closed IS NULL", (self.clock(), window_id)
            )

    def get(self, window_id: int) -> Window:
        with self.db.connection() as conn:
            row = conn.execute("SELECT * FROM vpn_windows WHERE id = ?", (window_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"保守の時間枠 {window_id} はありません", f"no maintenance window {window_id}"
            )
        return _row(row)

    def open_for(self, user: str, now: float | None = None) -> Window | None:
        """The window the vendor may sign in under right now (the one ending last, if several)."""
        t = self.clock() if now is None else now
        open_ = [w for w in self.list(user) if w.open_at(t)]
        return max(open_, key=lambda w: w.ends) if open_ else None

    def due_to_close(self, now: float | None = None) -> list[Window]:
        t = self.clock() if now is None else now
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM vpn_windows WHERE closed IS NULL AND (cancelled IS NOT NULL OR ends <= ?)",
                (t,),
            ).fetchall()
        return [_row(r) for r in rows]

    def list(self, user: str | None = None, limit: int = 200) -> list[Window]:
        sql, args = "SELECT * FROM vpn_windows", ()
        if user is not None:
            sql, args = sql + " WHERE user = ?", (user,)
        with self.db.connection() as conn:
            return [_row(r) for r in conn.execute(sql + " ORDER BY starts DESC LIMIT ?", (*args, limit))]
