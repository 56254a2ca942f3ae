"""VPN users' portal credentials: an Argon2id password hash and a TOTP secret, with a lockout.

Why here and not in the config: secrets are state. The config names the user and his rights; this table
proves it is him. A TOTP code is accepted once (replays inside its 30 s step are refused), and after
`MAX_FAILED` wrong codes or passwords the user is locked for `LOCKOUT_S` (the portal then revokes him).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.errors import MamoriError, NotFoundError
from appliance.storage import Database

log = logging.getLogger(__name__)

MAX_FAILED = 5
LOCKOUT_S = 15 * 60
MIN_PASSWORD = 10
ISSUER = "Mamori VPN"

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


class CredentialError(MamoriError):
    code = "vpn.credentials"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one sign-in attempt. `reason` is a stable code: ok, bad, locked, disabled, unknown."""

    ok: bool
    reason: str
    locked_now: bool = False


class Credentials:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def set(self, user: str, password: str, totp_secret: str | None = None) -> str:
        """Set (or reset) a user's password and TOTP secret; returns the TOTP secret to enrol once."""
        if len(password) < MIN_PASSWORD:
            raise CredentialError(
                f"パスワードは{MIN_PASSWORD}文字以上にしてください",
                f"the password must be at least {MIN_PASSWORD} characters",
            )
        secret = totp_secret or pyotp.random_base32()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO vpn_credentials(user, password_hash, totp_secret, updated)"
                " VALUES (?, ?, ?, ?)",
                (user, _HASHER.hash(password), secret, self.clock()),
            )
        return secret

    def provisioning_uri(self, user: str, clinic: str = "") -> str:
        """otpauth:// URI for the authenticator app (shown as a QR code once, at enrolment)."""
        secret = self._row(user)["totp_secret"]
        return pyotp.TOTP(secret).provisioning_uri(name=user, issuer_name=f"{ISSUER} {clinic}".strip())

    def exists(self, user: str) -> bool:
        with self.db.connection() as conn:
            return (
                conn.execute("SELECT 1 FROM vpn_credentials WHERE user = ?", (user,)).fetchone() is not None
            )

    def _row(self, user: str) -> sqlite3.Row:
        with self.db.connection() as conn:
            row = conn.execute("SELECT * FROM vpn_credentials WHERE user = ?", (user,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"VPN 利用者「{user}」のパスワードが未設定です", f"VPN user '{user}' has no credentials"
            )
        return row

    def set_disabled(self, user: str, disabled: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE vpn_credentials SET disabled = ? WHERE user = ?", (int(disabled), user))

    def unlock(self, user: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE vpn_credentials SET failed_codes = 0, locked_until = 0 WHERE user = ?", (user,)
            )

    def verify(self, user: str, password: str, code: str) -> Verdict:
        """Check password and TOTP code together; one failure counter for both, so guessing either locks."""
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM vpn_credentials WHERE user = ?", (user,)).fetchone()
            if row is None:
                _HASHER.hash(password)  # same cost as a real check: do not reveal which users exist
                return Verdict(False, "unknown")
            if row["disabled"]:
                return Verdict(False, "disabled")
            if row["locked_until"] > now:
                return Verdict(False, "locked")
            step = self._matching_step(row["totp_secret"], code, now)
            if (
                _password_ok(row["password_hash"], password)
                and step is not None
                and step > row["last_totp_step"]
            ):
                conn.execute(
                    "UPDATE vpn_credentials SET failed_codes = 0, last_totp_step = ? WHERE user = ?",
                    (step, user),
                )
                return Verdict(True, "ok")
            failed = row["failed_codes"] + 1
            locked = failed >= MAX_FAILED
            conn.execute(
                "UPDATE vpn_credentials SET failed_codes = ?, locked_until = ? WHERE user = ?",
                (0 if locked else failed, now + LOCKOUT_S if locked else 0, user),
            )
        log.warning("vpn sign-in failed for %s (%d)%s", user, failed, " -> locked" if locked else "")
        return Verdict(False, "locked" if locked else "bad", locked_now=locked)

    @staticmethod
    def _matching_step(secret: str, code: str, now: float) -> int | None:
        """The 30 s step the code belongs to (now, or one step either side for clock drift), or None."""
        code = (code or "").strip()
        if not (code.isdigit() and len(code) == 6):
            return None
        totp = pyotp.TOTP(secret)
        for drift in (0, -1, 1):
            at = now + drift * totp.interval
            if pyotp.utils.strings_equal(totp.at(at), code):
                return int(at // totp.interval)
        return None


def _password_ok(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        log.error("a stored VPN password hash is unreadable")
        return False
