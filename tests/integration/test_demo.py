"""`make demo` runs the appliance in the lab, says how to reach it, and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_and_cleans_up() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "lab.demo", "--exit-after", "3", "--web-port", "18443"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "リビジョン 1 を反映しました" in res.stdout
    assert "受付PC / reception PC" in res.stdout
    assert "終了しました" in res.stdout
    prefix = re.search(r"box namespace : (mdemo\d+)-box", res.stdout).group(1)
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if n.startswith(prefix + "-")]  # fmt: skip
    assert left == [], f"namespaces left behind: {left}"
