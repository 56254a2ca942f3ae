"""Revision diffs compare what the model sees, so comments and key order do not show as changes."""

from __future__ import annotations

from pathlib import Path

from appliance.revisions import readable_diff

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")


def test_comment_only_change_is_no_diff() -> None:
    assert readable_diff(EXAMPLE, "# 追記したコメント\n" + EXAMPLE) == ""


def test_real_change_shows_old_and_new_lines() -> None:
    changed = EXAMPLE.replace("block_timeout: 24h", "block_timeout: 48h")
    diff = readable_diff(EXAMPLE, changed)
    assert "-  block_timeout: 24h" in diff and "+  block_timeout: 48h" in diff
    assert diff.startswith("--- 前の設定")


def test_first_revision_diff_is_all_additions() -> None:
    diff = readable_diff(None, EXAMPLE)
    assert "+clinic:" in diff and "\n-" not in diff.split("\n", 2)[2]
