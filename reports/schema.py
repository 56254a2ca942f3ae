"""SQLite migrations of reports/ (append only; see appliance.storage).

report_answers: the clinic's own answer to each checklist item the box cannot judge (はい/いいえ), the
target date the checklist asks for when the answer is いいえ, who answered and when. One row per item;
the history of changes is in the audit log (every change is recorded there).
report_runs: each monthly report generated (month, files, ok or the error), so a missed month shows.
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE report_answers (
        item TEXT PRIMARY KEY,
        answer TEXT NOT NULL CHECK (answer IN ('はい', 'いいえ', '')),
        target_date TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        answered_by TEXT NOT NULL,
        answered_at REAL NOT NULL
    );
    CREATE TABLE report_runs (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        month TEXT NOT NULL,
        html TEXT NOT NULL DEFAULT '',
        pdf TEXT NOT NULL DEFAULT '',
        ok INTEGER NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        mailed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX report_runs_month ON report_runs(month)
    """,
]
