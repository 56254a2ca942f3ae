"""SQLite migrations of vpn/ (append only; see appliance.storage).

Devices are never deleted, only revoked: the clinic must be able to tell afterwards which key was valid
when (MHLW guideline: remote access is logged). A revoked device's tunnel address is reused only when the pool has no never-used one left.
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE vpn_devices (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        device TEXT NOT NULL,
        public_key TEXT NOT NULL,
        ip4 TEXT NOT NULL,
        ip6 TEXT,
        box_generated INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        revoked REAL
    );
    CREATE UNIQUE INDEX vpn_devices_active_key ON vpn_devices(public_key) WHERE revoked IS NULL;
    CREATE UNIQUE INDEX vpn_devices_active_name ON vpn_devices(user, device) WHERE revoked IS NULL;
    CREATE UNIQUE INDEX vpn_devices_active_ip4 ON vpn_devices(ip4) WHERE revoked IS NULL;
    CREATE TABLE vpn_credentials (
        user TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        totp_secret TEXT NOT NULL,
        failed_codes INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        last_totp_step INTEGER NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL
    );
    CREATE TABLE vpn_sessions (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        tunnel_ip TEXT NOT NULL,
        window_id INTEGER,
        started REAL NOT NULL,
        expires REAL NOT NULL,
        ended REAL,
        end_reason TEXT NOT NULL DEFAULT '',
        remote TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX vpn_sessions_open ON vpn_sessions(user) WHERE ended IS NULL;
    CREATE TABLE vpn_windows (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        starts REAL NOT NULL,
        ends REAL NOT NULL,
        reason TEXT NOT NULL,
        targets TEXT NOT NULL,
        approved_by TEXT NOT NULL,
        created REAL NOT NULL,
        cancelled REAL,
        closed REAL
    );
    CREATE TABLE vpn_peer_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        user TEXT NOT NULL,
        device_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        endpoint TEXT NOT NULL DEFAULT '',
        rx INTEGER NOT NULL DEFAULT 0,
        tx INTEGER NOT NULL DEFAULT 0,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX vpn_peer_log_user ON vpn_peer_log(user, ts)
    """,
    # A session whose kernel revoke failed stays open with the reason it is being ended for: the expiry
    # worker retries the revoke, and only a revoke that worked marks it ended (see vpn/sessions.py).
    """
    ALTER TABLE vpn_sessions ADD COLUMN revoke_pending TEXT NOT NULL DEFAULT '';
    CREATE INDEX vpn_sessions_pending ON vpn_sessions(id) WHERE ended IS NULL AND revoke_pending != ''
    """,
    # vpn_peer_log retention deletes by age (vpn/retention.py)
    """
    CREATE INDEX vpn_peer_log_ts ON vpn_peer_log(ts)
    """,
    # The box's own record of what each tunnel opened through it (vpn/connlog.py): accepted connections
    # from conntrack (bytes each way at close) and refused ones from the firewall's NFLOG group 8.
    """
    CREATE TABLE vpn_conn_log (
        id INTEGER PRIMARY KEY,
        first_ts REAL NOT NULL,
        last_ts REAL,
        user TEXT NOT NULL DEFAULT '',
        src TEXT NOT NULL,
        dst TEXT NOT NULL,
        proto TEXT NOT NULL,
        sport INTEGER,
        dport INTEGER,
        verdict TEXT NOT NULL,
        sent INTEGER NOT NULL DEFAULT 0,
        received INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 1,
        seen_open INTEGER NOT NULL DEFAULT 1,
        ct_id INTEGER
    );
    CREATE INDEX vpn_conn_log_src ON vpn_conn_log(src, first_ts);
    CREATE INDEX vpn_conn_log_ts ON vpn_conn_log(first_ts);
    CREATE INDEX vpn_conn_log_open ON vpn_conn_log(ct_id) WHERE last_ts IS NULL
    """,
    # The reachability check (vpn/reach.py, issue 17): each new handshake of an outside probe peer, by family
    # (ipv4, ipv6, link), with the time the box saw it (appliance.clock.wall) and where it came from.
    """
    CREATE TABLE vpn_reach (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        family TEXT NOT NULL CHECK (family IN ('ipv4', 'ipv6', 'link')),
        handshake_at REAL NOT NULL,
        endpoint TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX vpn_reach_family ON vpn_reach(family, handshake_at)
    """,
]
