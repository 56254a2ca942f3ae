"""SQLite migrations of webui/ (append only; see appliance.storage).

Accounts of the web UI (not VPN users), their password history (no reuse of the last five), server-side
sessions (so that logout, lockout and role changes end a session at once) and login attempts per remote
address (rate limiting shared by every server worker).

Migration 2 (sign-in throttling, webui.throttle): each attempt also records `who`, a keyed hash of the name
typed (never the name itself: people type passwords there). web_users.failed_count and locked_until stay
in the table but are no longer used: there is no account lockout any more.

Migration 3: a TOTP seed shown at first sign-in waits here (web_totp_pending, a few minutes) instead of in
the session cookie, which Flask signs but does not encrypt.
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE web_users (
        name TEXT PRIMARY KEY,
        display_name TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL CHECK (role IN ('admin', 'viewer', 'vendor')),
        password_hash TEXT NOT NULL,
        totp_secret TEXT NOT NULL DEFAULT '',
        totp_last_step INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        password_changed_at REAL NOT NULL,
        last_login REAL,
        failed_count INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0,
        expires_at REAL,
        grants TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE web_password_history (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX web_password_history_name ON web_password_history(name, ts);
    CREATE TABLE web_sessions (
        sid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        remote TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE web_login_attempts (
        id INTEGER PRIMARY KEY,
        remote TEXT NOT NULL,
        ts REAL NOT NULL,
        ok INTEGER NOT NULL
    );
    CREATE INDEX web_login_attempts_remote ON web_login_attempts(remote, ts)
    """,
    """
    ALTER TABLE web_login_attempts ADD COLUMN who TEXT NOT NULL DEFAULT '';
    CREATE INDEX web_login_attempts_who ON web_login_attempts(who, remote, ts)
    """,
    """
    CREATE TABLE web_totp_pending (
        token TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
]
