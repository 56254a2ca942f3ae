"""The passphrase for scheduled backups: kept in a 0600 file in the keys directory, never in the config.

The clinic must also keep it somewhere off the box (printed, in the safe): without it no archive can be
restored. An archive holds every secret of the box, and whoever has a copy can guess offline for as long as
he likes: we ask for 16 characters, or four or more words (a long passphrase of ordinary words is easy to
write down and hard to guess), and refuse repeated characters.
"""

from __future__ import annotations

import re
from pathlib import Path

from appliance.backup.errors import WeakPassphraseError
from appliance.fileio import atomic_write
from appliance.paths import Paths

MIN_LENGTH = 16
# Or: MIN_WORDS different words of MIN_WORD_LENGTH characters or more, MIN_WORDS_LENGTH characters in all
# ("うみ やま かわ そら ほし": Japanese words are short, each of their characters is one of thousands).
MIN_WORDS, MIN_WORD_LENGTH, MIN_WORDS_LENGTH = 4, 2, 12
_WORD_SPLIT = re.compile(r"[\s\-_.,、。・]+")  # spaces (also the Japanese one), hyphens, punctuation
FILE_NAME = "backup.passphrase"


def passphrase_path(paths: Paths) -> Path:
    return paths.keys_dir / FILE_NAME


def check_strength(passphrase: str) -> None:
    """Refuse what an attacker would guess first: short ones and ones of one or two repeated characters.
    Long enough is MIN_LENGTH characters, or MIN_WORDS different words (of MIN_WORD_LENGTH characters or
    more) in a passphrase of MIN_WORDS_LENGTH characters."""
    words = {w for w in _WORD_SPLIT.split(passphrase) if len(w) >= MIN_WORD_LENGTH}
    enough_words = len(words) >= MIN_WORDS and len(passphrase) >= MIN_WORDS_LENGTH
    if len(passphrase) < MIN_LENGTH and not enough_words:
        raise WeakPassphraseError(
            f"パスフレーズは{MIN_LENGTH}文字以上か、単語を{MIN_WORDS}つ以上つなげたものにしてください"
            "（例: 「うみ やま かわ そら ほし」）",
            f"the passphrase must be at least {MIN_LENGTH} characters, or {MIN_WORDS} or more words",
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
