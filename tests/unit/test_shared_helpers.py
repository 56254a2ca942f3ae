"""The shared helpers that replaced copies in every area (issue 16.5): who did it, ja/en, the audit log of a
box, the running config. Each keeps the answer the copies gave."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from appliance.actor import cli_actor
from appliance.audit import audit_log
from appliance.lang import english, pick, print_status, say
from appliance.revisions import RevisionStore, config_in_force, live_config
from appliance.subsystem import Context

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("author", "env", "who"),
    [
        ("院長", {"SUDO_USER": "tanaka", "USER": "root"}, "院長"),  # --author wins
        (None, {"SUDO_USER": "tanaka", "USER": "root"}, "tanaka"),  # the person behind sudo, not "root"
        (None, {"USER": "suzuki"}, "suzuki"),
        (None, {}, "root"),  # a unit without an environment
        ("", {"USER": "suzuki"}, "suzuki"),  # an empty --author says nothing
    ],
)
def test_cli_actor(
    monkeypatch: pytest.MonkeyPatch, author: str | None, env: dict[str, str], who: str
) -> None:
    for name in ("SUDO_USER", "USER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli_actor(argparse.Namespace(author=author)) == who
    if author is None:  # a subcommand without --author at all
        assert cli_actor(argparse.Namespace()) == who


def test_japanese_unless_english_is_asked(capsys: pytest.CaptureFixture[str]) -> None:
    ja, en, bare = argparse.Namespace(lang="ja"), argparse.Namespace(lang="en"), argparse.Namespace()
    assert (english(ja), english(en), english(bare)) == (False, True, False)
    assert pick(en, "遮断しました", "blocked") == "blocked"
    assert pick(bare, "遮断しました", "blocked") == "遮断しました"
    say(ja, "遮断しました", "blocked")
    assert capsys.readouterr().out == "遮断しました\n"


def test_print_status_json_or_lines(capsys: pytest.CaptureFixture[str]) -> None:
    made: list[str] = []

    def lines() -> list[str]:
        made.append("x")
        return ["状態: 正常", "送信先: hub"]

    print_status(argparse.Namespace(json=True), {"state": "正常", "ok": True}, lines)
    assert json.loads(capsys.readouterr().out) == {"state": "正常", "ok": True}
    assert made == []  # the lines are not made for --json
    print_status(argparse.Namespace(json=False), {}, lines)
    assert capsys.readouterr().out == "状態: 正常\n送信先: hub\n"


def test_running_config_is_the_live_revision_then_the_file_then_none(ctx: Context) -> None:
    assert live_config(ctx.db) is None and config_in_force(ctx.db, ctx.paths.config) is None  # a new box
    ctx.paths.config.write_text(EXAMPLE.replace("Asia/Tokyo", "UTC", 1), encoding="utf-8")
    from_file = config_in_force(ctx.db, ctx.paths.config)
    assert live_config(ctx.db) is None and from_file is not None
    assert from_file.clinic.timezone == "UTC"
    with ctx.db.transaction() as conn:
        RevisionStore(ctx.db).add(conn, EXAMPLE, "院長", "cli", "", "", "applied")
    live = live_config(ctx.db)
    assert live is not None and live.clinic.timezone == "Asia/Tokyo"
    assert config_in_force(ctx.db, ctx.paths.config) == live  # the live revision wins over the file


def test_audit_log_of_a_box_keeps_its_key_in_the_state_keys(ctx: Context) -> None:
    log = audit_log(ctx)
    assert log.key_path == ctx.paths.keys_dir / "audit.key"
    log.record("院長", "config.apply", {"revision": 1}, "cli")
    assert audit_log(ctx).verify().ok
    assert (ctx.paths.keys_dir / "audit.key").stat().st_mode & 0o777 == 0o640  # the web UI's group reads it
