"""The passphrase for scheduled backups: kept in a 0600 file in the keys directory, never in the config.

The clinic must also keep it somewhere off the box (printed, in the safe): without it no archive can be
restored. It is checked for a minimum length only; a long passphrase of ordinary words is what we ask for.
"""

from __future__ import annotations

from pathlib import Path

from appliance.backup.errors import WeakPassphraseError
from appliance.fileio import atomic_write
from appliance.paths import Paths

MIN_LENGTH = 12
FILE_NAME = "backup.passphrase"


def passphrase_path(paths: Paths) -> Path:
    return paths.keys_dir / FILE_NAME


def check_strength(passphrase: str) -> None:
    """Refuse what an attacker would guess first: short ones and ones of one or two repeated characters."""
    if len(passphrase) < MIN_LENGTH:
        raise WeakPassphraseError(
            f"パスフレーズは{MIN_LENGTH}文字以上にしてください（例: 単語を4つ以上つなげたもの）",
            f"the passphrase must be at least {MIN_LENGTH} characters (e.g. four or more words)",
        )
    if len(set(passphrase)) < 4 or passphrase.strip() != passphrase:
        raise WeakPassphraseError(
            "パスフレーズが単純すぎます（同じ文字の繰り返しや前後の空白は使えません）",
            "the passphrase is too simple (repeated characters or leading/trailing spaces)",
        )


def set_passphrase(paths: Paths, passphrase: str) -> Path:
    check_strength(passphrase)
    paths.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = passphrase_path(paths)
    atomic_write(path, passphrase.encode("utf-8"), mode=0o600)
    return path


def load_passphrase(paths: Paths) -> str | None:
    try:
        return passphrase_path(paths).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
