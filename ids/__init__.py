"""IDS: Suricata lifecycle, rules, EVE ingestion, incidents in plain Japanese, automatic blocking."""
