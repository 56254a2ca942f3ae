"""Signed webhooks: HMAC-SHA256 of the exact request body with a per-box secret, sent as
`X-Mamori-Signature: sha256=<hex>`, so the clinic's receiver can tell Mamori's messages from forgeries.

The secret is `<state>/keys/webhook.key` (mode 0600, 64 hex characters, made on first use); the HMAC key
is that text itself (the ASCII of the hex string), which is what a person copies into the receiver.
Non-goal: replay protection beyond the message id (receivers de-duplicate on Idempotency-Key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from appliance.errors import MamoriError
from appliance.fileio import create_once

KEY_NAME = "webhook.key"
HEADER = "X-Mamori-Signature"


def webhook_key(keys_dir: Path) -> bytes:
    """The box's webhook secret, made on first use. A racing process either wins the link() or reads the
    winner's complete key, never a partial one."""
    path = keys_dir / KEY_NAME
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = _create(path)
    if len(key) < 32:
        raise MamoriError(f"Webhook の鍵 {path} が壊れています", f"the webhook key {path} is damaged")
    return key.encode("ascii")


def _create(path: Path) -> str:
    create_once(path, secrets.token_hex(32) + "\n", mode=0o600)  # a racing process's key wins: read it back
    return path.read_text(encoding="ascii").strip()


def signature(key: bytes, body: bytes) -> str:
    """The header value for `body`: 'sha256=' and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does (constant-time compare); used by the tests and documented in the README."""
    return header is not None and hmac.compare_digest(signature(key, body), header)
