"""`mamori ssh status` without root: off on a new box, and on-but-not-running is a failing state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from appliance.cli import main
from appliance.paths import Paths
from appliance.revisions import RevisionStore
from appliance.storage import Database

REPO = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl vendor@example"


def run(state: Path, *argv: str) -> int:
    return main(["--state-dir", str(state), "--lang", "en", *argv])


def test_new_box_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "state", "ssh", "status") == 0
    assert capsys.readouterr().out.strip() == "maintenance SSH: off"


def test_on_in_the_config_but_no_sshd_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    data["ssh"] = {"enabled": True, "authorized_keys": [KEY]}
    with db.transaction() as conn:
        RevisionStore(db).add(
            conn, yaml.safe_dump(data, allow_unicode=True), "院長", "cli", "", "", "applied"
        )
    assert run(paths.state_dir, "ssh", "status") == 1
    out = capsys.readouterr().out
    assert "maintenance SSH: on, sshd NOT running" in out and "192.168.10.1 port 22" in out
    assert "vendor@example" in out and "SHA256:" in out
    assert run(paths.state_dir, "ssh", "status", "--json") == 1
    state = json.loads(capsys.readouterr().out)
    assert state["enabled"] is True and state["pid"] is None and state["keys"][0]["kind"] == "ssh-ed25519"
