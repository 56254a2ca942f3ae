"""Where things live. Every command takes --config and --state-dir so the lab and tests can point elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/mamori/config.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/mamori")


@dataclass(frozen=True)
class Paths:
    config: Path = DEFAULT_CONFIG
    state_dir: Path = DEFAULT_STATE_DIR

    @property
    def db_dir(self) -> Path:
        """The database's own directory: who writes the database must write here (appliance.storage)."""
        return self.state_dir / "db"

    @property
    def db(self) -> Path:
        return self.db_dir / "mamori.db"

    @property
    def run_dir(self) -> Path:
        """Rendered engine configs (dnsmasq.conf, suricata.yaml, ...) and pid files."""
        return self.state_dir / "run"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    def ensure(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
