"""The audit chain detects edits, deletions, re-ordering and a cut-off tail."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.errors import StateError
from appliance.storage import Database


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    db = Database(tmp_path / "mamori.db")
    db.migrate()
    log = AuditLog(db, tmp_path / "keys" / "audit.key")
    for i in range(5):
        log.record(
            "admin", "config.apply", {"revision": i, "comment": "変更 " + str(i)}, "web", "192.168.10.20"
        )
    return log


def sql(audit: AuditLog, statement: str, *args: object) -> None:
    with audit.db.connection() as conn:
        conn.execute(statement, args)


def test_intact_chain_verifies(audit: AuditLog) -> None:
    result = audit.verify()
    assert result.ok and result.checked == 5
    assert "改ざんされていません（5件を確認）" in result.text("ja")
    assert (audit.key_path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    ("case", "statement", "broken_at", "ja"),
    [
        (
            "edited detail",
            "UPDATE audit SET detail = '{\"revision\": 9}' WHERE id = 3",
            3,
            "書き換えられています",
        ),
        ("edited actor", "UPDATE audit SET actor = 'someone' WHERE id = 2", 2, "書き換えられています"),
        ("deleted entry", "DELETE FROM audit WHERE id = 2", 2, "削除または入れ替え"),
        ("deleted tail", "DELETE FROM audit WHERE id = 5", 5, "末尾"),
        (
            "re-hashed without key",
            "UPDATE audit SET hash = 'ab' || substr(hash, 3) WHERE id = 4",
            4,
            "書き換え",
        ),
    ],
)
def test_tampering_is_detected(audit: AuditLog, case: str, statement: str, broken_at: int, ja: str) -> None:
    sql(audit, statement)
    result = audit.verify()
    assert not result.ok, case
    assert result.broken_at == broken_at, (case, result)
    assert ja in result.text("ja")


def test_search_finds_japanese_detail(audit: AuditLog) -> None:
    found = audit.search("変更 3")
    assert [e.detail["revision"] for e in found] == [3]
    assert len(audit.search(limit=2)) == 2


def test_cut_tail_with_a_forged_head_is_detected(audit: AuditLog) -> None:
    """Deleting the last entry and rewriting the head from the stored hashes needs the key."""
    with audit.db.connection() as conn:
        last = conn.execute("SELECT hash FROM audit WHERE id = 4").fetchone()[0]
        conn.execute("DELETE FROM audit WHERE id = 5")
        conn.execute("UPDATE kv SET value = ? WHERE key = 'audit_head'", (f"4:{last}",))
    result = audit.verify()
    assert not result.ok and "末尾" in result.text("ja")


def test_wholesale_deletion_is_detected(audit: AuditLog) -> None:
    sql(audit, "DELETE FROM audit")
    assert not audit.verify().ok
    sql(audit, "DELETE FROM kv WHERE key = 'audit_head'")
    sql(audit, "INSERT INTO revisions(created_at, author, source, config_text, sha256, status)"
               " VALUES (0, 'a', 'cli', '', '', 'applied')")  # fmt: skip
    assert not audit.verify().ok  # revisions exist, so an empty log cannot be genuine


def test_damaged_key_is_refused(audit: AuditLog) -> None:
    audit.key_path.write_bytes(b"")
    with pytest.raises(StateError):
        audit.verify()
