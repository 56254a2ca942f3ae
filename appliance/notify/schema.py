"""SQLite migrations of the notifications (append only; see appliance.storage).

Tables:
- notify_pending: incidents seen but not yet announced, waiting for `notifications.min_interval` to pass
  (folding). Written in the same transaction that moves the "last incident seen" cursor, so a restart
  between seeing an incident and sending the message loses nothing.
- notify_outbox: one row per message and channel, written before the first attempt; retried with back-off
  until delivered or expired. `msg_id` is the message's stable id (the same on every channel and every
  retry): the receiver's de-duplication key.
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE notify_pending (
        incident_id INTEGER PRIMARY KEY,
        queued REAL NOT NULL
    );
    CREATE TABLE notify_outbox (
        id INTEGER PRIMARY KEY,
        msg_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        severity INTEGER NOT NULL,
        created REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL,
        last_try REAL,
        error TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        done REAL,
        UNIQUE (msg_id, channel)
    );
    CREATE INDEX notify_outbox_due ON notify_outbox(channel, state, next_try);
    CREATE INDEX notify_outbox_done ON notify_outbox(state, done)
    """,
]
