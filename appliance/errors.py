"""Typed errors, one per domain, each with a stable code and a message a clinic or vendor can act on.

Errors are raised deep inside and caught once, at the CLI or HTTP edge, which picks the language.
Every message exists in Japanese (the default) and English (`--lang en`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One human-readable message in both languages."""

    ja: str
    en: str

    def text(self, lang: str = "ja") -> str:
        return self.en if lang == "en" else self.ja


class MamoriError(Exception):
    """Base of every error Mamori reports to a person. `code` is stable and safe to match on."""

    code = "mamori"

    def __init__(self, ja: str, en: str, *, code: str | None = None) -> None:
        super().__init__(en)
        self.message = Message(ja, en)
        if code:
            self.code = code

    def text(self, lang: str = "ja") -> str:
        return self.message.text(lang)


@dataclass(frozen=True)
class FieldIssue:
    """A problem with one field of the config: where it is (a dotted path) and what is wrong."""

    path: str
    message: Message

    def text(self, lang: str = "ja") -> str:
        where = self.path or ("(設定全体)" if lang != "en" else "(whole config)")
        return f"{where}: {self.message.text(lang)}"


class ConfigError(MamoriError):
    """The config is invalid. Carries every issue found, not only the first, so one edit can fix them all."""

    code = "config.invalid"

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = list(issues)
        super().__init__(
            f"設定に誤りがあります（{len(self.issues)}件）",
            f"The configuration is invalid ({len(self.issues)} problem(s))",
        )

    def text(self, lang: str = "ja") -> str:
        head = self.message.text(lang)
        return "\n".join([head, *("  - " + issue.text(lang) for issue in self.issues)])

    def __str__(self) -> str:
        return self.text("en")


class ApplyError(MamoriError):
    """An engine refused the rendered state. Nothing was changed; the previous state is still live."""

    code = "apply.failed"


class StateError(MamoriError):
    """The state directory or database is missing, locked or inconsistent."""

    code = "state"


class NotFoundError(MamoriError):
    code = "not_found"
