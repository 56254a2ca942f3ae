"""SQLite migrations of ids/ (append only; see appliance.storage)."""

SCHEMA: list[str] = []
