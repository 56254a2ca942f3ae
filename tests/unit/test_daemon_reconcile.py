"""The daemon at boot: an unexpected error in an engine while applying the prepared config is logged and
the daemon keeps running (its web UI is how the clinic fixes the config); nothing is recorded as live."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.config.model import MamoriConfig
from appliance.daemon import Daemon
from appliance.paths import Paths
from appliance.service import ConfigService
from appliance.storage import Database
from appliance.subsystem import Context

REPO = Path(__file__).resolve().parents[2]


class BrokenEngine:
    """Raises what a bug raises (not a MamoriError) when its rendering is checked."""

    name = "broken"

    def render(self, cfg: MamoriConfig) -> str:
        return "x"

    def check(self, rendered: str) -> None:
        raise OSError(30, "Read-only file system", "/run/sshd")

    def apply(self, rendered: str) -> None:
        raise AssertionError("never reached: the check failed")

    def verify(self, rendered: str) -> None:
        raise AssertionError("never reached")

    def reset(self) -> None:
        pass


def test_boot_apply_with_a_broken_engine_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.config.write_text((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    ctx = Context(paths=paths, db=Database(paths.db))
    daemon = Daemon(ctx, worker_factory=lambda *_: [])
    daemon.service = ConfigService(ctx, subsystems=[BrokenEngine()])
    with caplog.at_level(logging.CRITICAL):
        assert daemon.reconcile() is None
    assert daemon.live_revision is None and daemon.service.current() is None
    assert any("unexpected error" in r.getMessage() and r.exc_info for r in caplog.records)
