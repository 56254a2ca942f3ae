"""Turn an alert into plain Japanese for clinic staff: a title, what it means, what to do, 重要度 高/中/低.

Mamori's own rules have one text per sid (ids.mamori_rules); every other rule is explained by its
classtype (ids.classtypes). The English signature is kept only as technical detail for the vendor: no
alert reaches the user as a bare English signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from ids.classtypes import CLASSTYPES, classtype_of
from ids.mamori_rules import MAMORI_RULES

IMPORTANCE: dict[int, str] = {1: "高", 2: "中", 3: "低"}


@dataclass(frozen=True)
class Explanation:
    title: str
    meaning: str
    action: str
    importance: str  # 高 / 中 / 低
    classtype: str
    technical: str  # the rule's own (English) message, for the support vendor

    def text(self) -> str:
        """One block of text for notifications and the CLI."""
        return f"【重要度 {self.importance}】{self.title}\n{self.meaning}\n対応: {self.action}"


def importance(severity: int) -> str:
    """Suricata severity 1 (highest) .. 4+ → 高/中/低; anything unexpected counts as 低."""
    return IMPORTANCE.get(severity, "低") if isinstance(severity, int) else "低"


def explain(sid: int, category: str, severity: int, signature: str = "") -> Explanation:
    classtype = classtype_of(category)
    own = MAMORI_RULES.get(sid)
    if own is not None:
        return Explanation(own.title, own.meaning, own.action, importance(severity), classtype, signature)
    text = CLASSTYPES[classtype]
    return Explanation(text.title, text.meaning, text.action, importance(severity), classtype, signature)
