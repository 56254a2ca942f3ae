"""SQLite migrations of vpn/ (append only; see appliance.storage)."""

SCHEMA: list[str] = []
