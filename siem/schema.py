"""SQLite tables of the SIEM area: how far each source has been handed to rsyslog."""

SCHEMA: list[str] = [
    """
    CREATE TABLE siem_cursors (
        source TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
]
