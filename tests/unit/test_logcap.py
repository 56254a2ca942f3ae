"""Helper-process logs are capped by copy-and-truncate: the writer keeps its O_APPEND descriptor and goes
on writing at the start of the same file; one older copy is kept; small files and other files are left."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from appliance.logcap import LogCapWorker, cap_logs
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.waiting import wait_or_fail


def test_big_logs_are_kept_once_and_restarted_while_the_writer_goes_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "ids" / "log").mkdir(parents=True)
    big, small, other = run / "webui.log", run / "chronyd.log", run / "ids" / "log" / "eve.json"
    nested = run / "ids" / "log" / "suricata.log"
    writer = os.open(big, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.write(writer, b"old line\n" * 200)
    small.write_bytes(b"x" * 100)
    other.write_bytes(b"{}\n" * 1000)
    nested.write_bytes(b"suricata\n" * 300)

    assert cap_logs(tmp_path, cap_bytes=1024) == [nested, big]
    assert (run / "webui.log.1").read_bytes() == b"old line\n" * 200
    assert (run / "ids" / "log" / "suricata.log.1").read_bytes() == b"suricata\n" * 300
    assert big.stat().st_size == 0 and nested.stat().st_size == 0
    assert small.read_bytes() == b"x" * 100 and not (run / "chronyd.log.1").exists()
    assert other.stat().st_size == 3000, "not a *.log: EVE has its own rotation"

    os.write(writer, b"new line\n")  # the running process's next line starts the file afresh
    os.close(writer)
    assert big.read_bytes() == b"new line\n"
    big.write_bytes(b"second round\n" * 100)
    cap_logs(tmp_path, cap_bytes=1024)
    assert (run / "webui.log.1").read_bytes() == b"second round\n" * 100, "only the last copy is kept"
    assert not list(run.glob(".*.tmp"))


def test_worker_caps_at_start_and_stops_when_asked(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    log = paths.run_dir / "sshd.log"
    log.write_bytes(b"y" * 5000)
    worker = LogCapWorker(Context(paths=paths, db=Database(paths.db)), cap_bytes=1000, every=3600)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        # A long bound, ended by the cap: CI runs this at nice 19 beside the integration tests.
        wait_or_fail(lambda: log.stat().st_size == 0, 60, "the worker capped sshd.log at start", step=0.05)
        assert (paths.run_dir / "sshd.log.1").stat().st_size == 5000
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the log cap worker did not stop within 60 s of being asked"
