"""Every classtype Suricata or ET Open knows, and every Mamori rule, has a Japanese explanation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ids.classtypes import CLASSTYPES, classtype_of
from ids.explain import explain, importance
from ids.mamori_rules import FLOW_SIDS, MAMORI_RULES, RULES_FILE, SID_RANGE

REPO = Path(__file__).resolve().parents[2]
CLASSIFICATION_FILES = [
    Path("/etc/suricata/classification.config"),
    REPO.parent / "shared" / "data" / "et-open-2024-04" / "classification.config",
]


def _classes(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for line in path.read_text().splitlines():
        m = re.match(r"config classification:\s*([^,]+),([^,]+),\s*(\d+)", line)
        if m:
            out.append((m.group(1).strip(), m.group(2).strip(), int(m.group(3))))
    return out


@pytest.mark.parametrize("path", CLASSIFICATION_FILES, ids=["suricata", "et-open"])
def test_every_classtype_is_explained(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data or suricata not installed)")
    classes = _classes(path)
    assert len(classes) >= 40
    for short, description, _prio in classes:
        assert short in CLASSTYPES, f"classtype {short} has no Japanese text"
        assert classtype_of(description) == short, f"EVE category {description!r} not mapped"
        text = CLASSTYPES[short]
        for part in (text.title, text.meaning, text.action):
            assert part and not part.isascii()


def test_every_mamori_rule_is_explained_and_vice_versa() -> None:
    sids = [int(m) for m in re.findall(r"\bsid:(\d+);", RULES_FILE.read_text())]
    assert len(sids) == len(set(sids)), "duplicate sid in mamori.rules"
    assert set(sids) == set(MAMORI_RULES) - FLOW_SIDS
    assert all(s in SID_RANGE for s in sids)


@pytest.mark.parametrize(
    ("sid", "category", "severity", "title_has", "imp"),
    [
        (1990001, "Attempted Administrator Privilege Gain", 1, "リモートデスクトップ", "高"),
        (2009358, "Web Application Attack", 1, "Webシステムへの攻撃", "高"),
        (2025108, "Potentially Bad Traffic", 2, "不審な通信", "中"),
        (2047719, "Device Retrieving External IP Address Detected", 2, "外部アドレス", "中"),
        (2999999, "Something Suricata never said", 3, "種類の分からない通信", "低"),
        (2999998, "", 4, "種類の分からない通信", "低"),
    ],
)
def test_explain_table(sid, category, severity, title_has, imp) -> None:
    ex = explain(sid, category, severity, "ET SOMETHING English")
    assert title_has in ex.title and ex.importance == imp
    assert ex.technical == "ET SOMETHING English"
    assert "ET SOMETHING" not in ex.text() and f"重要度 {imp}" in ex.text()


@pytest.mark.parametrize(("sev", "imp"), [(1, "高"), (2, "中"), (3, "低"), (4, "低"), (0, "低"), ("1", "低")])
def test_importance(sev, imp) -> None:
    assert importance(sev) == imp
