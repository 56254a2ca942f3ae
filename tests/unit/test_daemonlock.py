"""appliance.daemonlock: the daemon is the process holding run/mamori.lock; one per state directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance import daemonlock
from appliance.errors import MamoriError


def test_a_second_daemon_is_refused_and_the_pid_file_believed_only_while_the_lock_is_held(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    fd = daemonlock.hold(run)
    (run / daemonlock.PID_NAME).write_text(f"{os.getpid()}\n", encoding="ascii")
    assert daemonlock.running_pid(run) == os.getpid()
    with pytest.raises(MamoriError) as refused:
        daemonlock.hold(run)
    assert refused.value.code == "daemon.already_running" and "すでに動いています" in refused.value.text("ja")

    os.close(fd)  # the daemon ended (or crashed: the kernel drops the lock the same way)
    assert daemonlock.running_pid(run) is None  # the pid file left behind is not believed
    os.close(daemonlock.hold(run))  # and a new daemon may start


def test_no_pid_file_or_a_garbled_one_means_no_daemon(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert daemonlock.running_pid(run) is None
    fd = daemonlock.hold(run)
    try:
        assert daemonlock.running_pid(run) is None  # starting: the pid file is written when ready
        (run / daemonlock.PID_NAME).write_text("not a number\n", encoding="ascii")
        assert daemonlock.running_pid(run) is None
    finally:
        os.close(fd)
