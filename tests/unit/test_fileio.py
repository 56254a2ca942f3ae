"""A power cut during a config write leaves the old or the new file, never a torn one.

The writer is a real process killed with SIGKILL at varied moments while it rewrites a large config.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WRITER = r"""
import sys
from pathlib import Path
from appliance.fileio import atomic_write
path = Path(sys.argv[1])
for i in range(1_000_000):
    payload = (f"# generation {i % 2}\n" + ("x" * 200 + "\n") * 5000 + "end\n")
    atomic_write(path, payload)
"""


def is_whole(text: str) -> bool:
    lines = text.splitlines()
    return len(lines) == 5002 and lines[0] in ("# generation 0", "# generation 1") and lines[-1] == "end"


def test_kill_during_write_leaves_old_or_new(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("# generation 1\n" + ("x" * 200 + "\n") * 5000 + "end\n")
    repo = Path(__file__).resolve().parents[2]
    for attempt in range(15):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=repo)
        time.sleep(0.15 + 0.037 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert is_whole(target.read_text()), f"torn config after kill #{attempt}"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "config.yaml"]
    assert all(name.endswith(".tmp") for name in leftovers)  # temp files only; the config itself is whole


def test_create_once_never_replaces_and_leaves_no_temp_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    from appliance.fileio import create_once

    path = tmp_path / "keys" / "secret.key"
    made: list[bool] = []
    threads = [
        threading.Thread(target=lambda i=i: made.append(create_once(path, f"key {i}\n"))) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made.count(True) == 1 and path.read_text().startswith("key ")
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert create_once(path, "another\n") is False and path.read_text() != "another\n"
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]


def test_open_regular_reads_a_file_and_refuses_links_and_fifos(tmp_path: Path) -> None:
    from appliance.fileio import open_regular

    real = tmp_path / "report.pdf"
    real.write_bytes(b"%PDF-1.7\n")
    fd = open_regular(real)
    with os.fdopen(fd, "rb") as fh:
        assert fh.read() == b"%PDF-1.7\n"
    (tmp_path / "link.pdf").symlink_to(real)
    os.mkfifo(tmp_path / "fifo.pdf")  # no writer: a blocking open would hang here
    for name in ("link.pdf", "fifo.pdf", "missing.pdf"):
        with pytest.raises(OSError):
            open_regular(tmp_path / name)
