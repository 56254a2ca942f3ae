"""SQLite migrations of ids/ (append only; see appliance.storage).

Tables:
- ids_eve_position: where the EVE reader is in eve.json (device, inode, offset, a hash of the first bytes
  to notice a reused inode, and whether it is in the middle of skipping an oversized line). Updated in the
  same transaction as the events read, so a restart resumes exactly once.
- ids_events: every EVE record as received (raw JSON), for search and retention.
- ids_quarantine: lines that were not valid EVE (bad UTF-8, bad JSON, oversized), kept truncated.
- ids_counters: running counts (events, malformed, oversized, rotations...), shown by `mamori ids status`.
- ids_alerts / ids_incidents: normalised alerts and the incidents that group them.
- ids_blocks: the link "this incident caused a block of this address" (automatic blocks, and manual ones
  made from an incident). Not the list of what is blocked: the firewall owns that (fw_entries).
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE ids_eve_position (
        source TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        head_len INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        skipping INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL
    );
    CREATE TABLE ids_events (
        id INTEGER PRIMARY KEY,
        received REAL NOT NULL,
        ts REAL,
        event_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        raw TEXT NOT NULL
    );
    CREATE INDEX ids_events_received ON ids_events(received);
    CREATE INDEX ids_events_type ON ids_events(event_type, id);
    CREATE TABLE ids_quarantine (
        id INTEGER PRIMARY KEY,
        received REAL NOT NULL,
        reason TEXT NOT NULL,
        length INTEGER NOT NULL,
        sample BLOB NOT NULL
    );
    CREATE TABLE ids_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE ids_incidents (
        id INTEGER PRIMARY KEY,
        sid INTEGER NOT NULL,
        src_ip TEXT NOT NULL,
        dest_ip TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        count INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        signature TEXT NOT NULL,
        category TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT '未対応',
        notes TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ids_incidents_key ON ids_incidents(sid, src_ip, dest_ip, last_seen);
    CREATE TABLE ids_alerts (
        id INTEGER PRIMARY KEY,
        event_id INTEGER,
        incident_id INTEGER,
        ts REAL NOT NULL,
        sid INTEGER NOT NULL,
        rev INTEGER NOT NULL,
        signature TEXT NOT NULL,
        category TEXT NOT NULL,
        severity INTEGER NOT NULL,
        src_ip TEXT NOT NULL,
        src_port INTEGER,
        dest_ip TEXT NOT NULL,
        dest_port INTEGER,
        proto TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX ids_alerts_ts ON ids_alerts(ts);
    CREATE INDEX ids_alerts_incident ON ids_alerts(incident_id);
    CREATE TABLE ids_blocks (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        ip TEXT NOT NULL,
        timeout_s INTEGER NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        incident_id INTEGER,
        undone_at REAL
    );
    CREATE INDEX ids_blocks_ip ON ids_blocks(ip)
    """,
    # Years of incidents that no one closed (open ones are never pruned): the dashboard and the alert list
    # read the open ones newest first and count them per severity (ids.queries) from these two partial
    # indexes instead of sorting and counting the table. ids.queries.OPEN_WHERE repeats the condition
    # word for word: SQLite uses a partial index only for a query that names its condition.
    """
    CREATE INDEX ids_incidents_open ON ids_incidents(last_seen) WHERE state IN ('未対応', '確認済み');
    CREATE INDEX ids_incidents_open_severity ON ids_incidents(severity, last_seen)
        WHERE state IN ('未対応', '確認済み')
    """,
]
