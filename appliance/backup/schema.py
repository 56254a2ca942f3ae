"""SQLite migrations of the backup area: every backup made and every restore test run.

These rows are the evidence for MHLW checklist item 3② (backups exist and a restore was tested).
Append only: a released migration is never edited.
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE backup_runs (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        archive TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL DEFAULT 0,
        sha256 TEXT NOT NULL DEFAULT '',
        files INTEGER NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL,
        error_code TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX backup_runs_ts ON backup_runs(ts);
    CREATE TABLE backup_tests (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        archive TEXT NOT NULL,
        archive_sha256 TEXT NOT NULL DEFAULT '',
        backup_created TEXT NOT NULL DEFAULT '',
        files INTEGER NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL,
        error_code TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX backup_tests_ts ON backup_tests(ts)
    """,
]
