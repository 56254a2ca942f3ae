"""API tokens of vendor accounts: made and revoked only by the clinic's administrator (the web UI's
accounts page, or `mamori fleet token` as root), shown once, stored hashed, every use tied to one account.

Why the administrator and not the vendor himself: a token is a standing door into the box that outlives any
sign-in; the clinic that opens the vendor's account is the one that should hand out (and take back) that
door. A token only works while its account exists, is a vendor account, is not disabled and has not expired
(webui.accounts): disabling the account or letting it expire shuts the API too.

Format: `mamori_<id>_<secret>`; `id` (12 hex) is stored plainly to find the row, `secret` (43 base64url
characters) only as SHA-256. Non-goals: scopes per token (the account's grants are the scope), admin tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.storage import Database
from webui.accounts import Account, AccountStore

PREFIX = "mamori_"
_FORMAT = re.compile(r"^mamori_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MAX_PER_ACCOUNT = 5


class TokenError(MamoriError):
    code = "fleet.token"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    account: str
    label: str
    created_at: float
    created_by: str
    last_used: float | None
    revoked_at: float | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class TokenStore:
    def __init__(self, db: Database, clock: Callable[[], float] = wall) -> None:
        self.db = db
        self.clock = clock

    def create(self, account: str, created_by: str, label: str = "") -> tuple[TokenInfo, str]:
        """A new token for a vendor account: (its record, the whole token, to show once and never again)."""
        acc = AccountStore(self.db, clock=self.clock).get(account)
        if acc is None or acc.role != "vendor":
            raise TokenError(
                f"「{account}」は保守業者のアカウントではありません。API の鍵は保守業者のアカウントにだけ作れます",
                f"{account!r} is not a vendor account; API tokens are for vendor accounts only",
            )
        if len(self.active(account)) >= MAX_PER_ACCOUNT:
            raise TokenError(
                f"1つのアカウントの鍵は {MAX_PER_ACCOUNT} 個までです。使っていない鍵を無効にしてください",
                f"at most {MAX_PER_ACCOUNT} tokens per account; revoke one that is not used",
            )
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO fleet_tokens(id, account, secret_hash, label, created_at, created_by, account_created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, account, _hash(secret), label[:64], now, created_by, acc.created_at),
            )
        info = TokenInfo(token_id, account, label[:64], now, created_by, None, None)
        return info, f"{PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> TokenInfo:
        with self.db.transaction() as conn:
            n = conn.execute(
                "UPDATE fleet_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self.clock(), token_id),
            ).rowcount
        info = self.get(token_id)
        if info is None or not n:
            raise TokenError(
                f"有効な鍵 {token_id} はありません", f"no active token {token_id}", code="fleet.token_unknown"
            )
        return info

    def get(self, token_id: str) -> TokenInfo | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, account, label, created_at, created_by, last_used, revoked_at FROM fleet_tokens"
                " WHERE id = ?",
                (token_id,),
            ).fetchone()
        return TokenInfo(*row) if row else None

    def all(self) -> list[TokenInfo]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, account, label, created_at, created_by, last_used, revoked_at FROM fleet_tokens"
                " ORDER BY created_at DESC"
            ).fetchall()
        return [TokenInfo(*r) for r in rows]

    def active(self, account: str) -> list[TokenInfo]:
        return [t for t in self.all() if t.account == account and t.revoked_at is None]

    def authenticate(self, token: str) -> tuple[TokenInfo, Account] | None:
        """The token's record and its account, if the token is well formed, known, not revoked, its secret
        matches (constant time) and the account may sign in now (a vendor, enabled, not expired).

        Tokens are kept by account name, and a deleted account's tokens are not deleted with it (the audit
        trail and retention need them): a token older than its account was made for an earlier account of the
        same name and never opens the new one (each token records its account's creation stamp)."""
        match = _FORMAT.match(token.strip())
        if match is None:
            return None
        token_id, secret = match.groups()
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT secret_hash, account_created FROM fleet_tokens WHERE id = ? AND revoked_at IS NULL",
                (token_id,),
            ).fetchone()
        if row is None or not secrets.compare_digest(row[0], _hash(secret)):
            return None
        info = self.get(token_id)
        assert info is not None
        now = self.clock()
        account = AccountStore(self.db, clock=self.clock).get(info.account)
        if account is None or account.role != "vendor" or account.disabled or account.expired(now):
            return None
        made_for = row[1]
        if made_for is not None and made_for != account.created_at:  # an earlier, deleted account's token
            return None
        if made_for is None and info.created_at < account.created_at:  # a token from before account_created
            return None
        with self.db.transaction() as conn:
            conn.execute("UPDATE fleet_tokens SET last_used = ? WHERE id = ?", (now, token_id))
        return info, account
