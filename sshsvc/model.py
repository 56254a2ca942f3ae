"""The `ssh:` section of the config: whether maintenance SSH is on, and which public keys may log in.

Which zones may reach SSH is not configurable: only lan and mgmt (firewall.policy.BOX_SERVICES, "ssh"),
so neither a typo nor a hurried vendor can open the box's shell to the internet, the guests or the
medical devices. Each key is checked as an OpenSSH public key line: a known type, a base64 body whose
embedded type agrees, an optional comment, and nothing else. Options such as `command="..."` or
`from=` are refused rather than passed through: the rendered authorized_keys must say no more than
the config shows.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from appliance.config.types import Strict, mamori_error

if TYPE_CHECKING:
    from appliance.config.model import MamoriConfig

KEY_TYPES: tuple[str, ...] = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "ssh-rsa",
)
MAX_KEYS = 20
MAX_LINE = 8192  # an RSA-16384 key is about 2,800 characters; anything longer is not a key
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bad(why_ja: str, why_en: str) -> Exception:
    return mamori_error(f"公開鍵の形式が正しくありません（{why_ja}）", f"not an OpenSSH public key: {why_en}")


def _embedded_type(body: str) -> str:
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("鍵の本体が base64 ではありません", "the key body is not base64") from None
    if len(blob) < 4:
        raise _bad("鍵の本体が短すぎます", "the key body is too short")
    (length,) = struct.unpack(">I", blob[:4])
    if length > len(blob) - 4:
        raise _bad("鍵の本体が壊れています", "the key body is truncated")
    return blob[4 : 4 + length].decode("ascii", errors="replace")


def check_public_key(value: str) -> str:
    """One `type base64 [comment]` line; returns it normalised (single spaces)."""
    if len(value) > MAX_LINE:
        raise _bad("長すぎます", "too long")
    if _CONTROL.search(value):
        raise _bad("改行や制御文字が含まれています。鍵は1行に1つです", "line breaks or control characters")
    parts = value.split(maxsplit=2)
    if not parts or parts[0] not in KEY_TYPES:
        raise _bad(
            "「ssh-ed25519 AAAA... コメント」のように鍵の種類で始めてください。オプションは使えません",
            f"must start with a key type ({', '.join(KEY_TYPES)}); options are not allowed",
        )
    if len(parts) < 2:
        raise _bad("鍵の本体がありません", "the key body is missing")
    if _embedded_type(parts[1]) != parts[0]:
        raise _bad("鍵の種類と本体が一致しません", "the key type does not match the key body")
    return " ".join(parts)


PublicKey = Annotated[str, AfterValidator(check_public_key)]


class SshConfig(Strict):
    """`enabled: false` (the default) keeps sshd stopped and tcp/22 closed everywhere."""

    enabled: bool = False
    authorized_keys: list[PublicKey] = Field(default_factory=list, max_length=MAX_KEYS, validate_default=True)

    @field_validator("authorized_keys")
    @classmethod
    def _keys_when_enabled(cls, keys: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("enabled") and not keys:
            raise mamori_error(
                "SSH を有効にするには、ログインに使う公開鍵を1つ以上登録してください（パスワードでのログインはできません）",
                "ssh is enabled but no public key is given (password logins are never allowed)",
            )
        return keys


def listen_issues(cfg: MamoriConfig) -> list[tuple[str, str, str]]:
    """(field path, ja, en): sshd with no ListenAddress would listen on every address, wan included, so an
    enabled ssh needs a lan or mgmt address (the area's check across sections, sshsvc.area)."""
    from sshsvc.render import listen_addresses  # render imports the config model, which imports this module

    if cfg.ssh.enabled and not listen_addresses(cfg):
        return [(
            "ssh.enabled",
            "SSH を有効にするには、院内（lan）か管理用（mgmt）のポートに固定のアドレスが必要です",
            "ssh needs a lan or mgmt interface with a static address",
        )]  # fmt: skip
    return []
