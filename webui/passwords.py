"""Password policy after the MHLW security checklist (医療情報システムの安全管理に関するガイドライン 第6.0版).

Rules: at least 13 characters; or at least 8 characters mixing three of the four character classes when
the account uses a second factor (TOTP); never equal to the user id; not a well-known password; not one
of the last five passwords of the account (checked by the caller, who holds the hashes).
Non-goal: entropy estimation; a short, explainable rule set is what a clinic can follow.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from appliance.errors import MamoriError

MIN_LENGTH = 13
MIN_LENGTH_WITH_MFA = 8
HISTORY = 5
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"), re.compile(r"[^A-Za-z0-9]"))


class PasswordPolicyError(MamoriError):
    code = "password.policy"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of passwords seen in leaks and guessing lists (lower-cased)."""
    path = Path(__file__).with_name("common_passwords.txt")
    words = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def classes_used(password: str) -> int:
    return sum(1 for c in _CLASSES if c.search(password))


def check_password(password: str, user: str, mfa: bool) -> None:
    """Raise PasswordPolicyError with a message the person can act on; return None when acceptable."""
    if len(password) > 256:
        raise PasswordPolicyError(
            "パスワードは256文字以内にしてください", "a password may be at most 256 characters"
        )
    if password.strip().lower() == user.strip().lower():
        raise PasswordPolicyError(
            "ユーザー名と同じパスワードは使えません", "the password must not be the same as the user name"
        )
    if password.lower() in common_passwords() or _repetitive(password):
        raise PasswordPolicyError(
            "よく使われていて推測されやすいパスワードです。別のものにしてください",
            "this password is too common and easy to guess; choose another one",
        )
    if len(password) >= MIN_LENGTH:
        return
    if mfa and len(password) >= MIN_LENGTH_WITH_MFA and classes_used(password) >= 3:
        return
    if mfa:
        raise PasswordPolicyError(
            "パスワードは13文字以上にしてください（英大文字・英小文字・数字・記号のうち3種類を混ぜる場合は8文字以上）",
            "use at least 13 characters, or at least 8 mixing three of: upper case, lower case, digits, symbols",
        )
    raise PasswordPolicyError("パスワードは13文字以上にしてください", "use at least 13 characters")


def _repetitive(password: str) -> bool:
    """'aaaaaaaaaaaaa' or '1234567890123' pass the length rule but are guessed first."""
    if len(set(password)) <= 2:
        return True
    digits = "01234567890123456789"
    letters = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
    low = password.lower()
    return low in digits * 2 or low in letters * 2
