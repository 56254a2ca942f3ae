"""The clinic's own answers to the checklist items the box cannot judge (はい/いいえ, target date, note).

Every change is recorded in the audit log (who, from where, old and new answer) in the same transaction,
so the answers shown to an inspector can be traced to a person.
"""

from __future__ import annotations

import datetime as dt
import logging

from appliance.audit import AuditLog
from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.storage import Database
from reports.snapshot import Answer

log = logging.getLogger(__name__)

ANSWERS = ("はい", "いいえ", "")
ANSWER_FROM_EN = {"yes": "はい", "no": "いいえ", "none": ""}


class AnswerError(MamoriError):
    code = "reports.answer"


def _check(item: str, answer: str, target_date: str, note: str) -> None:
    from reports.checklist import CLINIC_KEYS  # local: checklist imports snapshot only, keep the graph flat

    if item not in CLINIC_KEYS:
        raise AnswerError(f"項目「{item}」は回答を記入する項目ではありません（{', '.join(sorted(CLINIC_KEYS))}）",
                          f"item {item!r} does not take a clinic answer")  # fmt: skip
    if answer not in ANSWERS:
        raise AnswerError("回答は「はい」か「いいえ」にしてください", "the answer must be yes or no")
    if answer == "いいえ" and not target_date:
        raise AnswerError("「いいえ」の場合は目標日を入力してください（例: 2026-12-31）",
                          "an answer of no needs a target date (e.g. 2026-12-31)")  # fmt: skip
    if target_date:
        try:
            dt.date.fromisoformat(target_date)
        except ValueError:
            raise AnswerError(f"目標日「{target_date}」は日付の形式ではありません（例: 2026-12-31）",
                              f"target date {target_date!r} is not a date (e.g. 2026-12-31)") from None  # fmt: skip
    if len(note) > 500:
        raise AnswerError("メモは500文字以内にしてください", "the note must be at most 500 characters")


def set_answer(
    db: Database, item: str, answer: str, target_date: str = "", note: str = "", *, actor: str,
    source: str = "cli", remote: str = "", now: float | None = None,
) -> Answer:  # fmt: skip
    """Store the clinic's answer to one item; audited. English yes/no are accepted."""
    answer = ANSWER_FROM_EN.get(answer.strip().lower(), answer.strip())
    target_date, note = target_date.strip(), note.strip()
    _check(item, answer, target_date, note)
    stamp = wall() if now is None else now
    with db.transaction() as conn:
        old = conn.execute(
            "SELECT answer, target_date FROM report_answers WHERE item = ?", (item,)
        ).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO report_answers(item, answer, target_date, note, answered_by, answered_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item, answer, target_date, note, actor, stamp),
        )
        detail = {"item": item, "answer": answer, "target_date": target_date,
                  "previous": dict(old) if old else None}  # fmt: skip
        AuditLog(db).record(
            actor, "reports.checklist.answer", detail, source=source, remote=remote, conn=conn
        )
    return Answer(answer, target_date, note, actor, stamp)


def load(db: Database) -> dict[str, Answer]:
    with db.connection() as conn:
        rows = conn.execute("SELECT * FROM report_answers").fetchall()
    return {r["item"]: Answer(r["answer"], r["target_date"], r["note"], r["answered_by"], r["answered_at"])
            for r in rows}  # fmt: skip
