"""The clinic's answers: valid and invalid input side by side; every change is in the audit chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.storage import Database
from reports.answers import AnswerError, load, set_answer


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "mamori.db")
    d.migrate()
    return d


CASES = [
    # (item, answer, target date, expected stored answer or None if refused)
    ("3-1", "はい", "", "はい"),
    ("3-1", "yes", "", "はい"),
    ("3-3", "いいえ", "2027-03-31", "いいえ"),
    ("3-3", "no", "2027-03-31", "いいえ"),
    ("3-3", "none", "", ""),
    ("3-3", "いいえ", "", None),  # いいえ needs a target date
    ("3-3", "いいえ", "来年", None),  # not a date
    ("3-3", "たぶん", "", None),
    ("2-1", "はい", "", None),  # the box judges this one itself
    ("9-9", "はい", "", None),
]


@pytest.mark.parametrize(("key", "answer", "target", "stored"), CASES)
def test_answers_are_checked_before_they_are_stored(
    db: Database, key: str, answer: str, target: str, stored: str | None
) -> None:
    if stored is None:
        with pytest.raises(AnswerError) as err:
            set_answer(db, key, answer, target, actor="院長")
        assert err.value.text("ja") and err.value.text("en")
        assert key not in load(db)
        assert AuditLog(db).search() == []
    else:
        set_answer(db, key, answer, target, actor="院長", now=1000.0)
        got = load(db)[key]
        assert (got.answer, got.target_date, got.answered_by, got.answered_at) == (
            stored,
            target,
            "院長",
            1000.0,
        )


def test_every_change_is_audited_with_the_previous_answer(db: Database) -> None:
    set_answer(
        db, "3-3", "いいえ", "2027-03-31", "作成中", actor="院長", source="web", remote="192.168.10.20"
    )
    set_answer(db, "3-3", "はい", actor="事務長")
    entries = AuditLog(db).search(text="reports.checklist.answer")
    assert [(e.actor, e.detail["answer"]) for e in entries] == [("事務長", "はい"), ("院長", "いいえ")]
    assert entries[0].detail["previous"] == {"answer": "いいえ", "target_date": "2027-03-31"}
    assert entries[1].remote == "192.168.10.20"
    assert AuditLog(db).verify().ok
