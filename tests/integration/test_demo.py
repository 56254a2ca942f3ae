"""`make demo` runs the appliance in the lab, serves the web UI on this machine's loopback, and leaves
nothing behind."""

from __future__ import annotations

import http.client
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PORT = 18443


def web_ui_answer(timeout: float) -> tuple[int, str] | None:
    """Status and Location of GET / on the demo's loopback port, once it answers."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the box's certificate is self-signed at first start
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", PORT, timeout=5, context=ctx)
            conn.request("GET", "/")
            resp = conn.getresponse()
            return resp.status, resp.getheader("Location", "")
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)
    return None


def test_demo_runs_serves_the_web_ui_and_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.demo", "--exit-after", "120", "--web-port", str(PORT)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        answer = web_ui_answer(timeout=60)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, out
    assert answer is not None, "the web UI never answered on the loopback port:\n" + out
    assert answer[0] == 302 and answer[1].endswith("/setup/"), answer  # first visit: the setup wizard
    assert "リビジョン 1 を反映しました" in out
    assert f"https://127.0.0.1:{PORT}/" in out
    assert re.search(r"セットアップコード: [A-Z2-9]{4}-[A-Z2-9]{4}", out), (
        out
    )  # what the wizard asks for first
    assert "終了しました" in out
    prefix = re.search(r"box namespace : (mdemo\d+)-box", out).group(1)
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if n.startswith(prefix + "-")]  # fmt: skip
    assert left == [], f"namespaces left behind: {left}"
