"""Sign-in throttling of the web UI: growing delays per (name, address) instead of an account lockout.

The lockout it replaces (5 failures in a row -> the account refused for 15 minutes, its sessions ended) let
anyone on the clinic's LAN keep the administrator out for good, in the middle of an incident, and its 403
told which names exist. Now three limits, each answered alike whether the name exists or not:

- **per name and address**: the first `FREE_TRIES` failures in a row cost nothing; after that the next try
  from that address for that name waits `BASE_DELAY * 2**(n - FREE_TRIES)` seconds after the last failure,
  at most `MAX_DELAY`. A success from that address ends the run. Guessing from address A never stops the
  owner signing in from address B.
- **per address**: `RATE_MAX_FAILURES` failures in `RATE_WINDOW`, whatever the names, and that address waits.
- **per name, over all addresses** (guessing spread over many addresses): from `ACCOUNT_MAX_FAILURES` failures
  in `ACCOUNT_WINDOW` on, only addresses the account signed in from in the last `KNOWN_DAYS` may still try.

Failures of every factor count (password, TOTP, TOTP enrolment, the current password when changing it).
Sessions already open are never touched. The name is stored as a keyed hash (HMAC with the cookie key):
people type passwords into the name field, and an unknown name must be tracked like a real one.
Non-goals: sleeping inside the request (a refused try is answered at once, 429) and CAPTCHAs.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import current_app

from appliance.clock import wall
from appliance.storage import Database

FREE_TRIES = 5
BASE_DELAY = 30
MAX_DELAY = 15 * 60
FAILURE_MEMORY = 86400  # a run of failures older than a day is forgotten
RATE_WINDOW = 5 * 60
RATE_MAX_FAILURES = 20
ACCOUNT_WINDOW = 3600
ACCOUNT_MAX_FAILURES = 100  # about ten addresses at full speed of the per-address delays
KNOWN_DAYS = 30

SCOPES = ("name_address", "address", "name")


def forget_old(conn: sqlite3.Connection, now: float) -> int:
    """Delete attempts no rule reads any more: failures after FAILURE_MEMORY, successes (the addresses an account
    signed in from) after KNOWN_DAYS. The one pruning rule, used here and by retention (webui.retention)."""
    return conn.execute(
        "DELETE FROM web_login_attempts WHERE (ok = 0 AND ts < ?) OR ts < ?",
        (now - FAILURE_MEMORY, now - KNOWN_DAYS * 86400),
    ).rowcount


@dataclass(frozen=True)
class Hold:
    """A try that must wait: how long, and which limit holds it (one of SCOPES)."""

    seconds: int
    scope: str

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))


def pair_delay(failures: int) -> int:
    """The wait after the last of `failures` failures in a row from one address for one name."""
    if failures < FREE_TRIES:
        return 0
    return min(BASE_DELAY * 2 ** min(failures - FREE_TRIES, 16), MAX_DELAY)


class SignInThrottle:
    """Sign-in attempts in the state database (web_login_attempts), so every server worker sees the same."""

    def __init__(self, db: Database, key: bytes, clock: Callable[[], float] = wall) -> None:
        self.db, self.key, self.clock = db, key, clock

    def who(self, name: str) -> str:
        return hmac.new(self.key, name.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    # -- asking ----------------------------------------------------------------------------------------
    def hold(self, name: str, remote: str) -> Hold | None:
        """Whether a try of `name` from `remote` must wait now (the longest of the three limits)."""
        now, who = self.clock(), self.who(name)
        with self.db.connection() as conn:
            holds = [
                Hold(math.ceil(self._pair_wait(conn, who, remote, now)), "name_address"),
                Hold(math.ceil(self._address_wait(conn, remote, now)), "address"),
                Hold(math.ceil(self._name_wait(conn, who, remote, now)), "name"),
            ]
        longest = max(holds, key=lambda h: h.seconds)
        return longest if longest.seconds > 0 else None

    def held_back(self, names: Iterable[str]) -> set[str]:
        """Names that some address may try only with delays (a run of FREE_TRIES failures or more, not yet
        ended by a success), or at their ceiling: the accounts page shows them, 制限を解除 releases them."""
        now, held = self.clock(), set()
        with self.db.connection() as conn:
            for name in names:
                who = self.who(name)
                remotes = [r[0] for r in conn.execute(
                    "SELECT DISTINCT remote FROM web_login_attempts WHERE who = ? AND ok = 0 AND ts > ?",
                    (who, now - FAILURE_MEMORY),
                )]  # fmt: skip
                if self._recent_failures(conn, who, now) >= ACCOUNT_MAX_FAILURES or any(
                    self._pair_failures(conn, who, remote, now)[0] >= FREE_TRIES for remote in remotes
                ):
                    held.add(name)
        return held

    # -- recording -------------------------------------------------------------------------------------
    def failure(self, name: str, remote: str) -> list[Hold]:
        """Count a failed try; returns the holds this failure started (for the audit log)."""
        now, who = self.clock(), self.who(name)
        with self.db.transaction() as conn:
            forget_old(conn, now)
            conn.execute(
                "INSERT INTO web_login_attempts(remote, who, ts, ok) VALUES (?, ?, ?, 0)", (remote, who, now)
            )
            started = []
            if self._pair_failures(conn, who, remote, now)[0] == FREE_TRIES:
                started.append(Hold(pair_delay(FREE_TRIES), "name_address"))
            if self._recent_failures(conn, who, now) == ACCOUNT_MAX_FAILURES:
                started.append(Hold(ACCOUNT_WINDOW, "name"))
            return started

    def success(self, name: str, remote: str) -> None:
        """A completed sign-in: ends the run of failures from this address and makes it a known one."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO web_login_attempts(remote, who, ts, ok) VALUES (?, ?, ?, 1)",
                (remote, self.who(name), self.clock()),
            )

    def release(self, name: str) -> None:
        """The administrator's 制限を解除: forget the failures of `name` from every address."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_login_attempts WHERE who = ? AND ok = 0", (self.who(name),))

    # -- the three limits ----------------------------------------------------------------------------
    def _pair_failures(
        self, conn: sqlite3.Connection, who: str, remote: str, now: float
    ) -> tuple[int, float]:
        """Failures in a row (since the last success, within FAILURE_MEMORY) and when the last was."""
        last_ok = conn.execute(
            "SELECT MAX(ts) FROM web_login_attempts WHERE who = ? AND remote = ? AND ok = 1", (who, remote)
        ).fetchone()[0]
        row = conn.execute(
            "SELECT COUNT(*), MAX(ts) FROM web_login_attempts WHERE who = ? AND remote = ? AND ok = 0 AND ts > ?",
            (who, remote, max(last_ok or 0.0, now - FAILURE_MEMORY)),
        ).fetchone()
        return row[0], row[1] or 0.0

    def _pair_wait(self, conn: sqlite3.Connection, who: str, remote: str, now: float) -> float:
        count, last = self._pair_failures(conn, who, remote, now)
        return last + pair_delay(count) - now if count >= FREE_TRIES else 0.0

    def _address_wait(self, conn: sqlite3.Connection, remote: str, now: float) -> float:
        """Until the oldest of the last RATE_MAX_FAILURES failures from `remote` leaves the window."""
        row = conn.execute(
            "SELECT ts FROM web_login_attempts WHERE remote = ? AND ok = 0 AND ts > ?"
            " ORDER BY ts DESC LIMIT 1 OFFSET ?",
            (remote, now - RATE_WINDOW, RATE_MAX_FAILURES - 1),
        ).fetchone()
        return row[0] + RATE_WINDOW - now if row else 0.0

    def _recent_failures(self, conn: sqlite3.Connection, who: str, now: float) -> int:
        return conn.execute(
            "SELECT COUNT(*) FROM web_login_attempts WHERE who = ? AND ok = 0 AND ts > ?",
            (who, now - ACCOUNT_WINDOW),
        ).fetchone()[0]

    def _name_wait(self, conn: sqlite3.Connection, who: str, remote: str, now: float) -> float:
        """Over the ceiling, an address the account never signed in from waits until it is under it."""
        row = conn.execute(
            "SELECT ts FROM web_login_attempts WHERE who = ? AND ok = 0 AND ts > ?"
            " ORDER BY ts DESC LIMIT 1 OFFSET ?",
            (who, now - ACCOUNT_WINDOW, ACCOUNT_MAX_FAILURES - 1),
        ).fetchone()
        if row is None:
            return 0.0
        known = conn.execute(
            "SELECT 1 FROM web_login_attempts WHERE who = ? AND remote = ? AND ok = 1 AND ts > ? LIMIT 1",
            (who, remote, now - KNOWN_DAYS * 86400),
        ).fetchone()
        return 0.0 if known else row[0] + ACCOUNT_WINDOW - now


def current() -> SignInThrottle:
    """The throttle of the running web app (its database, its cookie key, its clock)."""
    key = current_app.secret_key
    key = key.encode("utf-8") if isinstance(key, str) else bytes(key or b"")
    return SignInThrottle(
        current_app.config["MAMORI_CTX"].db, key, clock=current_app.config.get("MAMORI_CLOCK", wall)
    )
