"""Python children start isolated: the daemon and `mamori config apply --confirm`, started from a directory
that holds folders named like Mamori's packages, never import them (root would run that code).

`python -m pkg` puts the working directory first on sys.path; the children run with `python -I`, and the
box starts the daemon through its installed `mamori` entry point (image/systemd/mamori.service), as here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab.box import Box
from lab.waiting import wait_for

pytestmark = pytest.mark.integration

MAMORI = Path(sys.executable).parent / "mamori"  # the venv's entry point, as /usr/bin/mamori on the box
DECOYS = ("webui", "ids", "appliance")


def plant_decoys(where: Path, marker: Path) -> None:
    """Packages that, if ever imported, write their name to `marker` and then behave as if empty."""
    for name in DECOYS:
        (where / name).mkdir(parents=True)
        (where / name / "__init__.py").write_text(
            f"with open({str(marker)!r}, 'a') as fh:\n    fh.write({name!r} + '\\n')\n", encoding="utf-8"
        )


@pytest.fixture
def decoy_cwd(box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work from a directory holding the decoys; return the marker file they would write."""
    marker = tmp_path / "decoy-imported"
    plant_decoys(tmp_path / "cwd", marker)
    monkeypatch.chdir(tmp_path / "cwd")
    box.entry = (str(MAMORI),)
    # The decoys are live: a child started the old way (`python -m ...`) from here imports them.
    box.lab.run("box", [sys.executable, "-c", "import webui"])
    assert marker.read_text(encoding="utf-8") == "webui\n"
    marker.unlink()
    return marker


def curl(box: Box, url: str) -> str:
    res = box.lab.run("reception", ["curl", "-sk", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}", url],
                      check=False, timeout=15)  # fmt: skip
    return res.stdout


def test_web_ui_started_by_daemon_ignores_working_directory(box: Box, decoy_cwd: Path) -> None:
    box.start_daemon()
    # The real web UI answers (the login page redirect), started from the decoy directory.
    assert wait_for(lambda: curl(box, "https://192.168.10.1/") == "302", 60), (
        box.state_dir / "run" / "webui.log"
    ).read_text(errors="replace")
    assert not decoy_cwd.exists(), decoy_cwd.read_text(encoding="utf-8")


def test_confirm_timer_ignores_working_directory(box: Box, decoy_cwd: Path) -> None:
    candidate = box.state_dir / "candidate.yaml"
    live = box.config.read_text(encoding="utf-8")
    candidate.write_text(
        live.replace("name: さくら内科クリニック", "name: さくら内科クリニック2", 1), encoding="utf-8"
    )
    box.mamori("config", "apply", "--file", str(candidate), "--confirm", "2")

    def reverted() -> bool:
        return "reverted" in box.mamori("config", "history").stdout

    # The detached timer (a Python child) ran the real Mamori: it rolled the unconfirmed revision back.
    assert wait_for(reverted, 20), box.mamori("config", "history").stdout
    assert not decoy_cwd.exists(), decoy_cwd.read_text(encoding="utf-8")
