"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """A box's state: config path and a migrated state database under tmp_path (no kernel, no daemon)."""
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    c = Context(paths, Database(paths.db))
    c.db.migrate()
    return c
