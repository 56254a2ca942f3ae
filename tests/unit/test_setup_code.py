"""The first-boot setup code: made once per box, readable only by root, the same for the CLI and the web
UI, shown on the console banner until an administrator exists, then gone."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.paths import Paths
from appliance.storage import Database
from webui.accounts import AccountStore
from webui.setup_code import (
    ALPHABET,
    LENGTH,
    check_setup_code,
    code_path,
    display,
    ensure_setup_code,
    normalize,
    read_setup_code,
)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "config.yaml", tmp_path / "state")
    p.ensure()
    return p


def run(paths: Paths, *argv: str) -> int:
    return main(["--state-dir", str(paths.state_dir), *argv])


def test_code_is_made_once_from_unambiguous_letters(paths: Paths) -> None:
    code = ensure_setup_code(paths.keys_dir)
    assert len(code) == LENGTH and set(code) <= set(ALPHABET)
    assert not set(code) & set("01ILO")
    assert ensure_setup_code(paths.keys_dir) == code
    assert code_path(paths.keys_dir).stat().st_mode & 0o777 == 0o600
    assert display(code) == f"{code[:4]}-{code[4:]}"
    assert normalize(f" {display(code).lower()} ") == code
    codes = {ensure_setup_code(Path(paths.state_dir / f"k{i}")) for i in range(20)}
    assert len(codes) == 20, "every box makes its own"


def test_racing_makers_agree_on_one_code(paths: Paths) -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_setup_code(paths.keys_dir))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and read_setup_code(paths.keys_dir) == results[0]
    assert [f for f in os.listdir(paths.keys_dir) if f.startswith(".")] == []  # no temp files left


def test_check_without_a_code_file_refuses(paths: Paths) -> None:
    db = Database(paths.db)
    db.migrate()
    assert not check_setup_code(paths.keys_dir, db, "", 0.0).ok
    assert not check_setup_code(paths.keys_dir, db, "ABCD-EFGH", 0.0).ok


def test_cli_shows_the_code_and_writes_the_console_banner(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issue = tmp_path / "issue.d" / "50-mamori-setup.issue"
    assert run(paths, "--lang", "en", "setup-code", "--issue", str(issue)) == 0
    shown = re.search(r"setup code: ([A-Z0-9]{4}-[A-Z0-9]{4})", capsys.readouterr().out).group(1)
    assert normalize(shown) == read_setup_code(paths.keys_dir)
    banner = issue.read_text(encoding="ascii")
    assert shown in banner and "https://\\4/" in banner
    assert run(paths, "setup-code") == 0
    assert f"セットアップコード: {shown}" in capsys.readouterr().out  # the same code every time


def test_cli_after_setup_says_so_and_removes_code_and_banner(
    paths: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issue = tmp_path / "50-mamori-setup.issue"
    assert run(paths, "setup-code", "--issue", str(issue)) == 0
    store = AccountStore(Database(paths.db))
    store.create("incho", "Sakura-Naika-2026!", "admin")
    store.set_totp("incho", "JBSWY3DPEHPK3PXP")
    capsys.readouterr()
    assert run(paths, "setup-code", "--issue", str(issue)) == 0
    assert "初期設定は済んでいます" in capsys.readouterr().out
    assert not issue.exists() and read_setup_code(paths.keys_dir) is None
