"""The daemon runs the web UI: HTTPS on the LAN address, plain HTTP only redirecting, nothing for guests,
and a web UI that dies is started again by itself."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from lab.box import Box

pytestmark = pytest.mark.integration


def curl(box: Box, host: str, url: str) -> str:
    res = box.lab.run(host, ["curl", "-sk", "-o", "/dev/null", "-m", "5", "-w", "%{http_code} %{redirect_url}", url],
                      check=False, timeout=15)  # fmt: skip
    return res.stdout


def listener_pid(box: Box, port: int) -> int | None:
    """The web server process the daemon started (its direct child), not one of gunicorn's workers."""
    daemon_pid = int((box.state_dir / "run" / "mamori.pid").read_text())
    out = box.lab.run("box", ["ss", "-Hltnp", f"sport = :{port}"]).stdout
    for pid in {int(p) for p in re.findall(r"pid=(\d+)", out)}:
        try:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, IndexError, ValueError):
            continue
        if ppid == daemon_pid:
            return pid
    return None


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    return predicate()


def test_web_ui_served_redirected_confined_and_restarted(box: Box) -> None:
    box.start_daemon()
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    http = curl(box, "reception", "http://192.168.10.1/")
    assert re.match(r"30[1278] https://192\.168\.10\.1", http), http
    assert curl(box, "phone", "https://192.168.20.1/").startswith("000")  # guests: no web UI at all
    assert curl(box, "attacker", "https://203.0.113.2/").startswith("000")

    first = listener_pid(box, 443)
    assert first is not None
    os.kill(first, signal.SIGKILL)  # the web UI crashes
    second = wait_for(lambda: (p := listener_pid(box, 443)) and p != first and p, 60)
    assert second, "the daemon did not start the web UI again"
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)


def test_reload_restarts_the_web_ui(box: Box) -> None:
    """SIGHUP (what `mamori backup restore` and the web UI's restore send) restarts the web UI process too:
    after a restore it must read the restored certificate and cookie key, which it reads only at start."""
    box.start_daemon()
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    first = listener_pid(box, 443)
    assert first is not None
    os.kill(int((box.state_dir / "run" / "mamori.pid").read_text()), signal.SIGHUP)
    second = wait_for(lambda: (p := listener_pid(box, 443)) and p != first and p, 60)
    assert second, "a reload did not restart the web UI"
    assert not os.path.exists(f"/proc/{first}"), "the old web UI process is still there"
    assert wait_for(lambda: curl(box, "reception", "https://192.168.10.1/").startswith("302"), 60)
    assert box.daemon is not None and box.daemon.poll() is None
