"""SQLite migrations of firewall/ (append only; see appliance.storage)."""

SCHEMA: list[str] = []
