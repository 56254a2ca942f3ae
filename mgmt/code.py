"""Enrolment codes: what the vendor hands the clinic (read out, pasted, or as a QR) to set up the link.

A code is "MMR1-" followed by base32 (RFC 4648, no padding, in groups of 5 joined by "-") of a compact JSON
object and the first 4 bytes of its SHA-256: a mistyped or truncated code is refused by its checksum, not
half-applied. The JSON has a version field `v` (1) and the hub's endpoint `e`, the hub's public key `k`, the
hub network `n`, the box's tunnel address `a` and the hub's addresses `h`. Base32 keeps to upper-case letters
and digits, so the same text fits a QR code's alphanumeric mode and survives being read over the phone.

The code carries no secret: the box makes its own key, and the administrator compares the hub key's
fingerprint with what the vendor says before approving. Non-goal: signing codes (the fingerprint check on
the phone is the authentication step).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from appliance.errors import MamoriError
from mgmt.model import DEFAULT_INTERFACE, MgmtConfig

PREFIX = "MMR1-"
VERSION = 1
_CHECK = 4


class CodeError(MamoriError):
    code = "mgmt.code"


@dataclass(frozen=True)
class Enrolment:
    hub_endpoint: str
    hub_public_key: str
    network: str
    address: str
    hub_addresses: tuple[str, ...]

    def section(self, interface: str = DEFAULT_INTERFACE, enabled: bool = True) -> dict[str, Any]:
        """The `mgmt:` section this code asks for (the box keeps its own interface name)."""
        return {"enabled": enabled, "hub_endpoint": self.hub_endpoint, "hub_public_key": self.hub_public_key,
                "network": self.network, "address": self.address, "hub_addresses": list(self.hub_addresses),
                "interface": interface}  # fmt: skip

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.hub_public_key)


def fingerprint(public_key: str) -> str:
    """SHA-256 of the raw 32-byte key, first 16 hex digits in groups of 4: what is read out on the phone."""
    digest = hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))


def make_code(
    hub_endpoint: str, hub_public_key: str, network: str, address: str, hub_addresses: list[str]
) -> str:
    """The vendor side: validate like the box will, then encode. Raises CodeError with the reason."""
    e = _validated({"v": VERSION, "e": hub_endpoint, "k": hub_public_key, "n": network, "a": address,
                    "h": list(hub_addresses)})  # fmt: skip
    payload = json.dumps({"v": VERSION, "e": e.hub_endpoint, "k": e.hub_public_key, "n": e.network,
                          "a": e.address, "h": list(e.hub_addresses)}, separators=(",", ":")).encode()  # fmt: skip
    raw = payload + hashlib.sha256(payload).digest()[:_CHECK]
    text = base64.b32encode(raw).decode("ascii").rstrip("=")
    return PREFIX + "-".join(text[i : i + 5] for i in range(0, len(text), 5))


def _bad(ja: str, en: str) -> CodeError:
    return CodeError(f"登録コードが正しくありません（{ja}）。保守業者にもう一度確認してください",
                     f"not a valid enrolment code: {en}")  # fmt: skip


def decode_code(text: str) -> Enrolment:
    """Spaces, line breaks and dashes are ignored and lower case is accepted (people copy codes badly)."""
    compact = "".join((text or "").split()).upper()
    if not compact.startswith(PREFIX.rstrip("-")):
        raise _bad("「MMR1-」で始まっていません", "it does not start with MMR1-")
    body = compact[len(PREFIX) - 1 :].replace("-", "")
    if not body or len(body) > 2000:
        raise _bad("長さが違います", "wrong length")
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise _bad("使えない文字が含まれています", "characters outside base32") from None
    payload, check = raw[:-_CHECK], raw[-_CHECK:]
    if len(raw) <= _CHECK or hashlib.sha256(payload).digest()[:_CHECK] != check:
        raise _bad("一部が欠けているか、打ち間違いがあります", "checksum mismatch (truncated or mistyped)")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad("中身が読めません", "the payload is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise _bad(
            "この機器が知らない版のコードです",
            f"unknown version {data.get('v') if isinstance(data, dict) else '?'}",
        )
    return _validated(data)


def _validated(data: dict[str, Any]) -> Enrolment:
    try:
        m = MgmtConfig.model_validate({"enabled": True, "hub_endpoint": data.get("e", ""),
                                       "hub_public_key": data.get("k", ""), "network": data.get("n"),
                                       "address": data.get("a"), "hub_addresses": data.get("h", [])})  # fmt: skip
    except ValidationError as exc:
        from appliance.config.messages import issues_from_validation

        first = issues_from_validation(exc)[0]
        raise _bad(first.message.ja, first.message.en) from None
    assert m.network and m.address
    return Enrolment(m.hub_endpoint, m.hub_public_key, m.network, m.address, tuple(m.hub_addresses))
