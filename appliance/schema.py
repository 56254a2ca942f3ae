"""SQLite migrations of the appliance core: config revisions, the audit log, key/value state."""

SCHEMA: list[str] = [
    """
    CREATE TABLE revisions (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        author TEXT NOT NULL,
        source TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        config_text TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        diff TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        remote TEXT NOT NULL DEFAULT '',
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_ts ON audit(ts);
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # Counting one kind of entry (refused VPN sign-ins, clock steps) for every metrics scrape reads the index,
    # not five years of log (appliance/queries.py).
    """
    CREATE INDEX audit_action ON audit(action)
    """,
]
