"""SQLite migrations of firewall/ (append only; see appliance.storage)."""

SCHEMA: list[str] = [
    # 1: why an address is in a live set (the kernel keeps only the address and its timeout).
    """
    CREATE TABLE fw_entries (
        kind TEXT NOT NULL,            -- 'block' or 'quarantine'
        ip TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL,               -- NULL: until removed by hand
        PRIMARY KEY (kind, ip)
    );
    CREATE TABLE fw_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        action TEXT NOT NULL,          -- block, unblock, quarantine, release, admit_vpn, revoke_vpn
        ip TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX fw_history_ts ON fw_history(ts)
    """,
    # 2: recent drops read from NFLOG by the daemon (bounded; pruned to the newest rows).
    """
    CREATE TABLE fw_drops (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        prefix TEXT NOT NULL,
        in_if TEXT NOT NULL DEFAULT '',
        out_if TEXT NOT NULL DEFAULT '',
        src TEXT NOT NULL,
        dst TEXT NOT NULL,
        proto TEXT NOT NULL,
        sport INTEGER,
        dport INTEGER
    );
    CREATE INDEX fw_drops_ts ON fw_drops(ts)
    """,
    # 3: the device inventory (MHLW: 機器の台帳管理) and its "new device" events.
    """
    CREATE TABLE fw_devices (
        mac TEXT PRIMARY KEY,
        ip TEXT NOT NULL DEFAULT '',
        zone TEXT NOT NULL DEFAULT '',
        interface TEXT NOT NULL DEFAULT '',
        hostname TEXT NOT NULL DEFAULT '',
        vendor TEXT NOT NULL DEFAULT '',
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE fw_device_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        mac TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_ja TEXT NOT NULL,
        message_en TEXT NOT NULL
    )
    """,
]
