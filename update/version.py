"""Image versions: dot-separated non-negative integers (`2026.12.1`, or the image's `0.1.0.1765000000`).

Compared numerically part by part; missing trailing parts count as 0, so `2026.12` == `2026.12.0`. Anything
else is not a version (no letters, no pre-release tags): a version decides whether a bundle is a downgrade,
so it must have exactly one reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from appliance.errors import MamoriError

_VERSION = re.compile(r"(0|[1-9][0-9]{0,9})(\.(0|[1-9][0-9]{0,9})){0,5}")


class NotAVersion(MamoriError):
    code = "update.format"


@total_ordering
@dataclass(frozen=True)
class Version:
    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Version:
        text = text.strip()
        if not _VERSION.fullmatch(text):
            shown = text[:40]
            raise NotAVersion(
                f"版の番号として読めません: {shown!r}（例: 2026.12.1）",
                f"not a version: {shown!r} (e.g. 2026.12.1)",
            )
        return cls(tuple(int(p) for p in text.split(".")))

    def _key(self) -> tuple[int, ...]:
        parts = list(self.parts)
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        a, b = self.parts, other.parts
        width = max(len(a), len(b))
        return a + (0,) * (width - len(a)) < b + (0,) * (width - len(b))

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)
