"""SQLite migrations of fleetapi/ (append only; see appliance.storage).

fleet_tokens: the API tokens of vendor accounts. Only a SHA-256 of the secret part is kept (the secret is
256 random bits, shown once: a slow hash adds nothing against guessing and would cost every API call);
`id` is the public part a token starts with, so a token is looked up without comparing every hash.
A revoked token keeps its row (revoked_at) so the audit log's token ids still mean something, for 400 days
(fleetapi.retention; a token that still works is never deleted).
"""

SCHEMA: list[str] = [
    """
    CREATE TABLE fleet_tokens (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        last_used REAL,
        revoked_at REAL
    );
    CREATE INDEX fleet_tokens_account ON fleet_tokens(account)
    """,
    # The creation stamp of the account a token was made for: tokens are kept by account name, and a deleted
    # account's tokens must never open a later account of the same name (equality, so a clock step between
    # making the account and the token does not matter).
    "ALTER TABLE fleet_tokens ADD COLUMN account_created REAL",
]
