"""Web UI accounts: roles, Argon2id passwords, TOTP and server-side sessions.

Roles: 管理者 (admin: everything), 閲覧 (viewer: dashboard and alerts, may acknowledge), 保守業者 (vendor:
only the areas the clinic grants, until a set time). TOTP is mandatory for admin and vendor.
Every decision that matters (login, failure, account change) is written to the audit log by the caller
(`webui.views.auth`), which knows the remote address; this module only keeps the state. Failed sign-ins
are throttled per name and address by `webui.throttle`: there is no account lockout (anyone could
trigger it).
Non-goal: LDAP or SSO; a small clinic has a handful of accounts.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.clock import wall
from appliance.config.authority import AREA_PERMISSIONS, EXPLICIT_GRANTS
from appliance.errors import MamoriError, NotFoundError
from appliance.storage import Database
from webui.passwords import HISTORY, check_password

log = logging.getLogger(__name__)

AREA_GRANTS: tuple[str, ...] = tuple(AREA_PERMISSIONS)
BY_NAME_GRANTS: tuple[str, ...] = tuple(EXPLICIT_GRANTS)
ROLES = ("admin", "viewer", "vendor")
ROLE_LABELS = {"admin": "管理者", "viewer": "閲覧", "vendor": "保守業者"}
MFA_ROLES = ("admin", "vendor")
# Areas a clinic can grant a vendor (appliance.config.authority, one list): the usual ones, each with its
# view and change permissions, then those the clinic must tick by name (EXPLICIT_GRANTS).
GRANTABLE = AREA_GRANTS + BY_NAME_GRANTS
GRANT_LABELS = {
    "alerts": "アラート",
    "firewall": "ファイアウォール",
    "vpn": "VPN",
    "devices": "機器一覧",
    "settings": "設定",
    "audit": "監査ログ",
    "update": "ソフトウェア更新",
    "notifications": "お知らせの送り先",
    "web": "管理画面を開く場所と証明書",
    "vpn_users": "VPN 利用者の役割・時間帯・行き先",
    "ids_response": "侵入検知の停止・自動遮断・記録の保存期間",
    "network": "ネットワークの設定（差し込み口・区域・DNS）",
    "time": "時刻合わせの相手",
}
UNUSED_DAYS = 90
SESSION_MAX_SECONDS = (
    12 * 3600
)  # a session ends 12 h after sign-in, however busy (on top of the idle timeout)
ENROL_SECONDS = 600  # a TOTP seed shown at first sign-in waits this long on the server to be confirmed

_HASHER = PasswordHasher()  # argon2-cffi's default type is Argon2id (RFC 9106 low-memory profile).


class AuthError(MamoriError):
    code = "auth"


@dataclass(frozen=True)
class Account:
    name: str
    display_name: str
    role: str
    totp_enabled: bool
    created_at: float
    password_changed_at: float
    last_login: float | None
    disabled: bool
    expires_at: float | None
    grants: tuple[str, ...] = field(default_factory=tuple)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def unused(self, now: float) -> bool:
        """Flag for 不要なアカウントの削除: never signed in, or not for UNUSED_DAYS days."""
        last = self.last_login or self.created_at
        return now - last > UNUSED_DAYS * 86400


def _account(row: sqlite3.Row) -> Account:
    return Account(
        name=row["name"],
        display_name=row["display_name"],
        role=row["role"],
        totp_enabled=bool(row["totp_secret"]),
        created_at=row["created_at"],
        password_changed_at=row["password_changed_at"],
        last_login=row["last_login"],
        disabled=bool(row["disabled"]),
        expires_at=row["expires_at"],
        grants=tuple(json.loads(row["grants"] or "[]")),
    )


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class AccountStore:
    """All account state lives in the state database so that every server worker sees the same."""

    def __init__(self, db: Database, clock: Callable[[], float] = wall) -> None:
        self.db = db
        self.clock = clock

    # -- reading -----------------------------------------------------------------------------------
    def get(self, name: str) -> Account | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT * FROM web_users WHERE name = ?", (name,)).fetchone()
        return _account(row) if row else None

    def require(self, name: str) -> Account:
        account = self.get(name)
        if account is None:
            raise NotFoundError(f"アカウント「{name}」はありません", f"no account named {name!r}")
        return account

    def all(self) -> list[Account]:
        with self.db.connection() as conn:
            return [_account(r) for r in conn.execute("SELECT * FROM web_users ORDER BY role, name")]

    def admin_exists(self) -> bool:
        """An administrator who can actually sign in (TOTP enrolled, not disabled)."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM web_users WHERE role = 'admin' AND disabled = 0 AND totp_secret != '' LIMIT 1"
            ).fetchone()
        return row is not None

    # -- creating and changing ---------------------------------------------------------------------
    def create(
        self,
        name: str,
        password: str,
        role: str,
        display_name: str = "",
        totp_secret: str = "",
        expires_at: float | None = None,
        grants: tuple[str, ...] = (),
    ) -> Account:
        _check_name(name)
        if role not in ROLES:
            raise AuthError(f"役割「{role}」はありません", f"unknown role {role!r}")
        if role == "vendor" and expires_at is None:
            raise AuthError(
                "保守業者のアカウントには有効期限が必要です", "a vendor account needs an expiry time"
            )
        bad = [g for g in grants if g not in GRANTABLE]
        if bad:
            raise AuthError(f"許可できない範囲です: {', '.join(bad)}", f"cannot grant: {', '.join(bad)}")
        check_password(password, name, mfa=role in MFA_ROLES or bool(totp_secret))
        now = self.clock()
        pw_hash = hash_password(password)
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO web_users(name, display_name, role, password_hash, totp_secret, created_at,"
                    " password_changed_at, expires_at, grants) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        display_name,
                        role,
                        pw_hash,
                        totp_secret,
                        now,
                        now,
                        expires_at,
                        json.dumps(list(grants)),
                    ),
                )
                conn.execute(
                    "INSERT INTO web_password_history(name, password_hash, ts) VALUES (?, ?, ?)",
                    (name, pw_hash, now),
                )
        except sqlite3.IntegrityError:
            raise AuthError(
                f"「{name}」というアカウントはすでにあります", f"account {name!r} exists"
            ) from None
        return self.require(name)

    def change_password(self, name: str, new_password: str, keep_sid: str = "") -> None:
        """Set a new password and end every session of `name` but `keep_sid` (the one changing it): a
        password changed because it leaked must also shut out whoever signed in with it."""
        account = self.require(name)
        check_password(new_password, name, mfa=account.totp_enabled or account.role in MFA_ROLES)
        with self.db.connection() as conn:
            recent = conn.execute(
                "SELECT password_hash FROM web_password_history WHERE name = ? ORDER BY ts DESC, id DESC LIMIT ?",
                (name, HISTORY),
            ).fetchall()
        if any(password_matches(r[0], new_password) for r in recent):
            raise AuthError(
                f"最近{HISTORY}回のうちに使ったパスワードは使えません",
                f"do not reuse any of the last {HISTORY} passwords",
            )
        now = self.clock()
        pw_hash = hash_password(new_password)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE web_users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                (pw_hash, now, name),
            )
            conn.execute(
                "INSERT INTO web_password_history(name, password_hash, ts) VALUES (?, ?, ?)",
                (name, pw_hash, now),
            )
            conn.execute("DELETE FROM web_sessions WHERE name = ? AND sid != ?", (name, keep_sid))

    def update(self, name: str, **fields: object) -> None:
        """Change display name, role, grants, expiry or the disabled flag (admin actions)."""
        allowed = {"display_name", "role", "grants", "expires_at", "disabled"}
        unknown = set(fields) - allowed
        if unknown:
            raise AuthError("変更できない項目です", f"cannot change {sorted(unknown)}")
        if "grants" in fields:
            fields["grants"] = json.dumps(list(fields["grants"]))  # type: ignore[arg-type]
        self.require(name)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE web_users SET {sets} WHERE name = ?", (*fields.values(), name))
            if fields.get("disabled") or "role" in fields:
                conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))

    def delete(self, name: str) -> None:
        self.require(name)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))
            conn.execute("DELETE FROM web_password_history WHERE name = ?", (name,))
            conn.execute("DELETE FROM web_totp_pending WHERE name = ?", (name,))
            conn.execute("DELETE FROM web_users WHERE name = ?", (name,))

    # -- TOTP ----------------------------------------------------------------------------------------
    def set_totp(self, name: str, secret: str, used_step: int = 0) -> None:
        """Enrol `secret`; `used_step` is the step of the code that proved it, refused from now on."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE web_users SET totp_secret = ?, totp_last_step = ? WHERE name = ?",
                (secret, used_step, name),
            )

    def begin_enrolment(self, name: str) -> tuple[str, str]:
        """A new TOTP seed for `name`, kept here (never in the cookie, which is signed, not encrypted)
        until it is confirmed or ENROL_SECONDS pass; returns (token for the session, the seed to show)."""
        token, secret, now = secrets.token_urlsafe(24), new_totp_secret(), self.clock()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_totp_pending WHERE created_at < ?", (now - ENROL_SECONDS,))
            conn.execute(
                "INSERT INTO web_totp_pending(token, name, secret, created_at) VALUES (?, ?, ?, ?)",
                (token, name, secret, now),
            )
        return token, secret

    def pending_enrolment(self, token: str) -> tuple[str, str] | None:
        """(name, seed) of an enrolment begun less than ENROL_SECONDS ago."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT name, secret FROM web_totp_pending WHERE token = ? AND created_at >= ?",
                (token, self.clock() - ENROL_SECONDS),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def complete_enrolment(self, token: str, code: str) -> str | None:
        """Enrol the pending seed when `code` proves it (that code's step is then used up); the name."""
        pending = self.pending_enrolment(token)
        if pending is None:
            return None
        name, secret = pending
        step = verify_totp(secret, "".join(ch for ch in code if ch.isdigit()), self.clock())
        if step is None:
            return None
        self.set_totp(name, secret, used_step=step)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_totp_pending WHERE name = ?", (name,))
        return name

    def check_totp(self, name: str, code: str) -> bool:
        """Accept the current code (±1 step of clock drift), each step only once (no replay)."""
        code = "".join(ch for ch in code if ch.isdigit())
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT totp_secret, totp_last_step FROM web_users WHERE name = ?", (name,)
            ).fetchone()
            if row is None or not row[0] or len(code) != 6:
                return False
            step = verify_totp(row[0], code, self.clock())
            if step is None or step <= row[1]:
                return False
            conn.execute("UPDATE web_users SET totp_last_step = ? WHERE name = ?", (step, name))
            return True

    # -- sign-in bookkeeping ------------------------------------------------------------------------
    def verify_password(self, name: str, password: str) -> bool:
        with self.db.connection() as conn:
            row = conn.execute("SELECT password_hash FROM web_users WHERE name = ?", (name,)).fetchone()
        if row is None:
            _HASHER.hash(password)  # same cost as a real check, so timing does not reveal which names exist
            return False
        return password_matches(row[0], password)

    def record_login(self, name: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE web_users SET last_login = ? WHERE name = ?", (self.clock(), name))

    # -- sessions ------------------------------------------------------------------------------------
    def open_session(self, name: str, remote: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO web_sessions(sid, name, created_at, last_seen, remote) VALUES (?, ?, ?, ?, ?)",
                (sid, name, now, now, remote),
            )
        return sid

    def touch_session(self, sid: str, idle_seconds: int) -> Account | None:
        """The account of a live session (and mark it used now); None if unknown, idle too long, older than
        SESSION_MAX_SECONDS, or the account is barred."""
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT name, created_at, last_seen FROM web_sessions WHERE sid = ?", (sid,)
            ).fetchone()
            if row is None:
                return None
            if now - row["last_seen"] > idle_seconds or now - row["created_at"] > SESSION_MAX_SECONDS:
                conn.execute("DELETE FROM web_sessions WHERE sid = ?", (sid,))
                return None
            conn.execute("UPDATE web_sessions SET last_seen = ? WHERE sid = ?", (now, sid))
        account = self.get(row["name"])
        if account is None or account.disabled or account.expired(now):
            self.close_session(sid)
            return None
        return account

    def close_session(self, sid: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_sessions WHERE sid = ?", (sid,))

    def session_count(self, name: str) -> int:
        with self.db.connection() as conn:
            return conn.execute("SELECT COUNT(*) FROM web_sessions WHERE name = ?", (name,)).fetchone()[0]


def new_totp_secret() -> str:
    return pyotp.random_base32()


def verify_totp(secret: str, code: str, now: float) -> int | None:
    """The time step the code belongs to, if it is valid within ±1 step of `now`."""
    totp = pyotp.TOTP(secret)
    base = int(now) // totp.interval
    for step in (base, base - 1, base + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _check_name(name: str) -> None:
    if (
        not (1 <= len(name) <= 32)
        or not all(ch.isalnum() or ch in "._-" for ch in name)
        or not name.isascii()
    ):
        raise AuthError(
            "ユーザー名は半角英数字と「.」「_」「-」で32文字以内にしてください",
            "a user name is up to 32 ASCII letters, digits, '.', '_' or '-'",
        )
