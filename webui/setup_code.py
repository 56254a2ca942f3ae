"""The one-time setup code that guards the first-boot wizard.

Why: before the first administrator exists, whoever reaches the wizard first would own the box. The
wizard therefore asks for a code that only someone with the box in hand can read: it is shown on the
box's own screen (the console banner on a real box, `image/`), in its journal, and by `mamori
setup-code` for the vendor at the console. The code is made once per box (never in the image), kept in
the keys directory (0600), and deleted as soon as the first administrator has finished enrolling TOTP.

About 40 bits from an alphabet without look-alikes (no 0/O, 1/I/L), shown as two groups of four. Wrong codes
are limited box-wide (not per address: addresses on the LAN are cheap to change): after
`MAX_FAILURES` within `WINDOW_SECONDS` the wizard refuses codes until the window has passed.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from appliance.fileio import create_once
from appliance.storage import Database

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 8
FILE_NAME = "setup-code"
FAILURES_KEY = "webui.setup_code_failures"
MAX_FAILURES = 10
WINDOW_SECONDS = 15 * 60


def code_path(keys_dir: Path) -> Path:
    return keys_dir / FILE_NAME


def normalize(text: str) -> str:
    """What a person types, reduced to the code's characters: case, spaces and hyphens do not matter."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def display(code: str) -> str:
    """ABCD-EFGH: easier to read aloud over the phone and to type."""
    return f"{code[:4]}-{code[4:]}"


def ensure_setup_code(keys_dir: Path) -> str:
    """The box's setup code, made on first use. Safe when the web UI and the CLI race: the file is
    created exclusively, complete, and whoever loses the race reads the winner's code."""
    path = code_path(keys_dir)
    if path.exists():
        return read_setup_code(keys_dir) or ""
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    create_once(path, code + "\n", mode=0o600)  # another process made the code first: keep theirs
    return read_setup_code(keys_dir) or ""


def read_setup_code(keys_dir: Path) -> str | None:
    try:
        code = normalize(code_path(keys_dir).read_text(encoding="ascii"))
    except FileNotFoundError:
        return None
    return code if len(code) == LENGTH else None


def discard_setup_code(keys_dir: Path) -> None:
    code_path(keys_dir).unlink(missing_ok=True)


@dataclass(frozen=True)
class CodeCheck:
    ok: bool
    locked: bool = False  # too many wrong codes lately: not even checked


def check_setup_code(keys_dir: Path, db: Database, entered: str, now: float) -> CodeCheck:
    """Compares in constant time and counts failures box-wide (see the module docstring)."""
    recent = [t for t in _failures(db) if now - t < WINDOW_SECONDS]
    if len(recent) >= MAX_FAILURES:
        return CodeCheck(ok=False, locked=True)
    expected = read_setup_code(keys_dir)
    if expected and hmac.compare_digest(normalize(entered).encode(), expected.encode()):
        return CodeCheck(ok=True)
    db.set_kv(FAILURES_KEY, json.dumps([*recent, now]))
    return CodeCheck(ok=False)


def _failures(db: Database) -> list[float]:
    try:
        values = json.loads(db.get_kv(FAILURES_KEY) or "[]")
    except ValueError:
        return []
    return [float(v) for v in values if isinstance(v, int | float)]
