"""WireGuard key pairs, made by `wg genkey` / `wg pubkey` so the box uses the same code as the tools.

The server's private key is generated on the box, kept in `keys_dir` with mode 0600 and handed to the
engine only as a file path (`wg set ... private-key FILE`): it is never printed, logged or returned.
Scope: key generation and validation; what is done with the keys lives in vpn/wg.py and vpn/provision.py.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import subprocess
from pathlib import Path

from appliance.errors import ApplyError, MamoriError
from appliance.fileio import create_once

log = logging.getLogger(__name__)

SERVER_KEY_NAME = "wg-server.key"


class KeyError_(MamoriError):
    """A key given by a person (e.g. a bring-your-own public key) is not a WireGuard key."""

    code = "vpn.key"


def is_valid_key(text: str) -> bool:
    """A WireGuard key is 32 bytes in standard base64 (44 characters ending in '=')."""
    if not isinstance(text, str) or len(text) != 44 or not text.endswith("="):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def check_public_key(text: str) -> str:
    """Validate a public key a user brought; raise a typed error a clinic can act on."""
    key = (text or "").strip()
    if not is_valid_key(key):
        raise KeyError_(
            "公開鍵の形式が正しくありません（WireGuard の公開鍵は44文字で「=」で終わります）",
            "not a WireGuard public key (44 base64 characters ending in '=')",
        )
    return key


def _wg(args: list[str], stdin: str | None = None) -> str:
    try:
        res = subprocess.run(
            ["wg", *args], input=stdin, capture_output=True, text=True, timeout=10, check=False
        )
    except FileNotFoundError:
        raise ApplyError(
            "wg コマンドがありません（wireguard-tools を入れてください）",
            "wg not found (install wireguard-tools)",
        ) from None
    if res.returncode != 0:
        raise ApplyError(f"wg {args[0]} に失敗しました", f"wg {args[0]} failed: {res.stderr.strip()[:200]}")
    return res.stdout.strip()


def generate_private_key() -> str:
    return _wg(["genkey"])


def public_key(private_key: str) -> str:
    if not is_valid_key(private_key):
        raise KeyError_("秘密鍵の形式が正しくありません", "not a WireGuard private key")
    return _wg(["pubkey"], stdin=private_key + "\n")


def generate_keypair() -> tuple[str, str]:
    """(private, public). The private key is for a device provisioned by the box and is shown once."""
    private = generate_private_key()
    return private, public_key(private)


def server_key_path(keys_dir: Path) -> Path:
    return Path(keys_dir) / SERVER_KEY_NAME


def ensure_private_key(path: Path, what_ja: str, what_en: str, code: str = "vpn.key") -> str:
    """Make a WireGuard private key at `path` once (0600, never replaced) and return its public key.

    An existing key is kept: replacing it would cut every tunnel that trusts it. A key file with loose
    permissions is tightened rather than trusted as-is; a damaged one is an error naming `what`."""
    if create_once(path, generate_private_key() + "\n", mode=0o600):
        log.info("generated the %s in %s", what_en, path)
    if path.stat().st_mode & 0o077:
        log.warning("tightening permissions of %s", path)
        os.chmod(path, 0o600)
    private = path.read_text(encoding="ascii").strip()
    if not is_valid_key(private):
        raise ApplyError(f"{what_ja}の鍵ファイル {path} が壊れています", f"the {what_en} file {path} is corrupt",
                         code=code)  # fmt: skip
    return public_key(private)


def ensure_server_key(keys_dir: Path) -> tuple[Path, str]:
    """Create the server key once (mode 0600) and return (its path, the public key)."""
    path = server_key_path(keys_dir)
    return path, ensure_private_key(path, "VPN サーバー", "WireGuard server key")
