"""A config change stops the old worker generation before it starts the next; a worker that does not stop
in time is named in the log (the next generation then starts beside it, which is otherwise invisible)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from appliance import daemon as daemon_module
from appliance.daemon import Daemon
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context


class Prompt:
    name = "prompt"

    def __init__(self) -> None:
        self.running = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.running.set()
        stop.wait()


class Late:
    """Ignores the stop until the test lets it go (a long PDF or a slow disk in real life)."""

    name = "late"

    def __init__(self) -> None:
        self.running = threading.Event()
        self.release = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.running.set()
        stop.wait()
        self.release.wait(120)


def test_a_worker_that_does_not_stop_in_time_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The prompt one must stop within this: CI runs the unit tests at nice 19 beside the integration tests,
    # where 2 s was a guess (the late one makes the test last this long).
    monkeypatch.setattr(daemon_module, "STOP_WAIT_S", 10.0)
    prompt, late = Prompt(), Late()
    ctx = Context(paths=Paths(tmp_path / "config.yaml", tmp_path / "state"), db=Database(tmp_path / "m.db"))
    daemon = Daemon(ctx, worker_factory=lambda *_: [prompt, late])
    daemon.start_workers(object())  # type: ignore[arg-type]  # the factory ignores the config
    threads = [s.thread for s in daemon.supervised]
    try:
        # Stopped before its thread got to run it, a worker is never started at all (Supervised checks the
        # stop first): the late one would then be gone at once, which is not the case this test is about.
        for worker in (prompt, late):
            assert worker.running.wait(60), f"worker {worker.name} was not running within 60 s"
        with caplog.at_level(logging.WARNING, logger="mamori.daemon"):
            daemon.stop_workers()
        assert not threads[0].is_alive() and threads[1].is_alive()
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warned == ["worker late did not stop within 10 s"], warned
    finally:
        late.release.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a worker did not end within 60 s of being let go"
