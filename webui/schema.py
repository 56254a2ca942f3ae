"""SQLite migrations of webui/ (append only; see appliance.storage)."""

SCHEMA: list[str] = []
