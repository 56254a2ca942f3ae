"""The audit chain detects edits, deletions, re-ordering and a cut-off tail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.audit import GENESIS, AuditLog, _canonical, entries_after, newest_id
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
    assert (audit.key_path.stat().st_mode & 0o777) == 0o640  # the web UI's group reads it (child_access)


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


def test_entries_after_a_cursor_oldest_first_of_the_actions_asked(audit: AuditLog) -> None:
    """How an area follows the log from its own cursor (vpn.notices) without naming the table."""
    audit.record("yamada", "vpn.signin", {"window": None}, "vpn")
    audit.record("yamada", "vpn.user.locked", {"device": "phone"}, "vpn")
    assert newest_id(audit.db) == 7
    got = entries_after(audit.db, 2, ("vpn.signin", "vpn.user.locked"))
    assert [(e.id, e.actor, e.action, e.detail) for e in got] == [
        (6, "yamada", "vpn.signin", {"window": None}),
        (7, "yamada", "vpn.user.locked", {"device": "phone"}),
    ]
    assert [e.id for e in entries_after(audit.db, 2, limit=2)] == [3, 4]
    assert entries_after(audit.db, 7) == []


def test_newest_id_of_an_empty_log_is_zero(tmp_path: Path) -> None:
    db = Database(tmp_path / "mamori.db")
    db.migrate()
    assert newest_id(db) == 0 and entries_after(db, 0) == []


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


def _age(audit: AuditLog, ids: range, seconds: float) -> AuditLog:
    """Rewrite the entries' times into the past and re-chain them with the key (as if written back then)."""
    key = audit._key()
    with audit.db.connection() as conn:
        rows = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
        prev = GENESIS
        for row in rows:
            ts = row["ts"] - seconds if row["id"] in ids else row["ts"]
            mac = audit._mac(key, prev, _canonical(row["id"], ts, row["actor"], row["source"], row["remote"],
                                                   row["action"], row["detail"]))  # fmt: skip
            conn.execute(
                "UPDATE audit SET ts = ?, prev_hash = ?, hash = ? WHERE id = ?", (ts, prev, mac, row["id"])
            )
            prev = mac
        conn.execute(
            "INSERT OR REPLACE INTO kv(key, value) VALUES ('audit_head', ?)",
            (audit._head(key, len(rows), prev),),
        )
    assert audit.verify().ok
    return audit


YEAR = 365 * 86400


@pytest.fixture
def pruned(audit: AuditLog) -> AuditLog:
    """Entries 1-3 six years old, 4-5 recent; pruned at five years: 1-3 go, an audit.pruned entry (6) comes."""
    _age(audit, range(1, 4), 6 * YEAR)
    assert audit.prune(time.time() - 5 * YEAR) == 3
    return audit


def test_prune_keeps_the_chain_verifiable(pruned: AuditLog) -> None:
    result = pruned.verify()
    assert result.ok, result.text("en")
    assert result.checked == 3
    entries = pruned.search()
    assert [e.id for e in entries] == [6, 5, 4]
    assert entries[0].action == "audit.pruned" and entries[0].detail["up_to"] == 3
    assert entries[0].detail["entries"] == 3
    pruned.record("admin", "config.apply", {"revision": 9})  # the chain goes on after a prune
    assert pruned.verify().ok


def test_prune_stops_at_the_first_recent_entry(audit: AuditLog) -> None:
    """An entry after a recent one is never pruned, even if its time is old (a clock stepped back)."""
    _age(audit, range(1, 2), 6 * YEAR)
    _age(audit, range(3, 4), 6 * YEAR)
    assert audit.prune(time.time() - 5 * YEAR) == 1
    assert [e.id for e in audit.search()][-1] == 2
    assert audit.verify().ok


def test_nothing_old_nothing_pruned(audit: AuditLog) -> None:
    assert audit.prune(time.time() - 5 * YEAR) == 0
    assert audit.verify().checked == 5 and len(audit.search()) == 5


@pytest.mark.parametrize(
    ("case", "statement", "ja"),
    [
        ("edited after prune", "UPDATE audit SET actor = 'someone' WHERE id = 5", "5 番目の記録が書き換え"),
        ("more deleted from the start", "DELETE FROM audit WHERE id = 4", "4 番目の記録が削除"),
        ("tail cut after prune", "DELETE FROM audit WHERE id = 6", "末尾"),
        (
            "anchor moved",
            "UPDATE kv SET value = '4' || substr(value, 2) WHERE key = 'audit_anchor'",
            "整理した位置",
        ),
        ("anchor removed", "DELETE FROM kv WHERE key = 'audit_anchor'", "1 番目の記録が削除"),
    ],
)
def test_tampering_after_prune_is_detected(pruned: AuditLog, case: str, statement: str, ja: str) -> None:
    sql(pruned, statement)
    result = pruned.verify()
    assert not result.ok, case
    assert ja in result.text("ja"), (case, result.text("ja"))


def test_anchor_cannot_be_moved_past_deleted_entries(pruned: AuditLog) -> None:
    """Deleting entry 4 and pointing the anchor at it needs the key: a copied anchor of another id fails."""
    with pruned.db.connection() as conn:
        row = conn.execute("SELECT id, hash FROM audit WHERE id = 4").fetchone()
        old = conn.execute("SELECT value FROM kv WHERE key = 'audit_anchor'").fetchone()[0]
        conn.execute("DELETE FROM audit WHERE id = 4")
        forged = f"{row['id']}:{row['hash']}:{old.split(':')[2]}"
        conn.execute("UPDATE kv SET value = ? WHERE key = 'audit_anchor'", (forged,))
    result = pruned.verify()
    assert not result.ok and "整理した位置" in result.text("ja")
