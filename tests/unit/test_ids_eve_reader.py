"""EVE reader: every valid line stored exactly once, every bad line counted and kept aside, never a crash.

Each test writes lines through a Writer that keeps its own independent count of what it wrote (valid lines
by sequence number, bad lines by reason), and compares the database with it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from appliance.storage import Database
from ids.eve_reader import EveReader, counters


class Writer:
    """Appends EVE-like lines to a file the way Suricata does, and remembers what it wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        self.valid: list[int] = []
        self.bad: Counter[str] = Counter()
        self.fh = open(path, "ab", buffering=0)

    def line(self, n: int = 1) -> None:
        for _ in range(n):
            rec = {"timestamp": "2024-04-01T12:00:00.000000+0900", "event_type": "dns", "seq": self.seq}
            self.fh.write(json.dumps(rec).encode() + b"\n")
            self.valid.append(self.seq)
            self.seq += 1

    def raw(self, data: bytes, reason: str | None = None) -> None:
        self.fh.write(data)
        if reason:
            self.bad[reason] += 1

    def reopen(self) -> None:
        self.fh.close()
        self.fh = open(self.path, "ab", buffering=0)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "mamori.db")
    d.migrate()
    return d


def stored_seqs(db: Database) -> list[int]:
    with db.connection() as conn:
        return [json.loads(r[0])["seq"] for r in conn.execute("SELECT raw FROM ids_events ORDER BY id")]


def quarantined(db: Database) -> Counter[str]:
    with db.connection() as conn:
        return Counter(r[0] for r in conn.execute("SELECT reason FROM ids_quarantine"))


def assert_exact(db: Database, w: Writer) -> None:
    seqs = stored_seqs(db)
    assert len(seqs) == len(set(seqs)), "an event was stored twice"
    assert sorted(seqs) == sorted(w.valid), "an event was lost"
    assert quarantined(db) == w.bad
    c = counters(db)
    assert c.get("events", 0) - c.get("events_not_stored", 0) == len(w.valid)
    for reason, n in w.bad.items():
        assert c[reason] == n


def test_half_written_last_line_waits_for_newline(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(3)
    w.raw(b'{"event_type": "flow", "se')
    r = EveReader(db, eve)
    assert r.poll() == 3
    assert r.poll() == 0
    w.raw(b'q": 3}\n')
    w.valid.append(3)
    assert r.poll() == 1
    assert_exact(db, w)


def test_restart_mid_file_resumes_exactly(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(100)
    r = EveReader(db, eve, batch_lines=10)
    assert r.poll(max_batches=3) == 30
    r.close()
    r2 = EveReader(db, eve, batch_lines=10)
    assert r2.poll() == 70
    assert_exact(db, w)


def test_failure_inside_transaction_stores_nothing_and_moves_nothing(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(20)
    calls = {"n": 0}

    def flaky_sink(conn, events) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full (simulated crash between events and position)")

    r = EveReader(db, eve, batch_lines=5, sink=flaky_sink)
    with pytest.raises(RuntimeError):
        r.poll()
    r.close()
    assert len(stored_seqs(db)) == 5
    assert EveReader(db, eve, batch_lines=5).poll() == 15
    assert_exact(db, w)


def test_rotation_drains_renamed_file_then_follows_new(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(50)
    r = EveReader(db, eve)
    assert r.poll() == 50
    w.line(10)
    os.rename(eve, tmp_path / "eve.json.1")
    w.line(5)  # Suricata still writes to the renamed file until it reopens
    eve.touch()  # logrotate "create": an empty new file before the writer is told
    assert r.poll() == 15
    w.line(2)  # still the old file
    w.reopen()
    w.line(20)
    assert r.poll() == 22
    assert_exact(db, w)
    assert counters(db)["rotations"] == 1


def test_rotation_while_stopped(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(40)
    r = EveReader(db, eve, batch_lines=10)
    r.poll(max_batches=2)
    r.close()
    os.rename(eve, tmp_path / "eve.json.1")
    w.reopen()
    w.line(7)
    assert EveReader(db, eve).poll() == 27
    assert_exact(db, w)


def test_truncation_restarts_at_zero(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(30)
    r = EveReader(db, eve)
    assert r.poll() == 30
    os.truncate(eve, 0)  # copytruncate
    w.line(10)
    assert r.poll() == 10
    assert_exact(db, w)
    assert counters(db)["truncated"] == 1


def test_truncated_and_regrown_past_offset_is_noticed_by_head_hash(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(5)
    r = EveReader(db, eve)
    assert r.poll() == 5
    r.close()
    os.truncate(eve, 0)
    w.raw(b'{"event_type":"stats","seq":5,"pad":"' + b"x" * 600 + b'"}\n')
    w.valid.append(5)
    w.seq = 6
    w.line(5)
    assert EveReader(db, eve).poll() == 6
    assert_exact(db, w)
    assert counters(db)["replaced_in_place"] == 1


def test_ten_megabyte_line_is_kept_aside(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(2)
    big = b'{"event_type":"alert","payload":"' + b"A" * (10 * 1024 * 1024) + b'"}\n'
    w.raw(big[: 3 * 1024 * 1024])
    r = EveReader(db, eve, max_line=1 << 20)
    assert r.poll() == 2
    r.close()  # restart while inside the oversized line: it must not be quarantined twice
    w.raw(big[3 * 1024 * 1024 :], reason="oversized")
    w.line(3)
    assert EveReader(db, eve, max_line=1 << 20).poll() == 3
    assert_exact(db, w)
    with db.connection() as conn:
        length, sample = conn.execute("SELECT length, sample FROM ids_quarantine").fetchone()
    assert length > (1 << 20) and len(sample) <= 4096


def test_invalid_utf8_json_and_non_objects_are_counted(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line()
    w.raw(b'{"event_type":"alert","x":"\xff\xfe"}\n', reason="invalid_utf8")
    w.line()
    w.raw(b'{"event_type":"alert",\n', reason="invalid_json")
    w.raw(b"[1,2,3]\n", reason="not_eve")
    w.raw(b'{"no_type":1}\n', reason="not_eve")
    w.raw(b"\n", reason="invalid_json")
    w.line()
    r = EveReader(db, eve)
    assert r.poll() == 3
    assert_exact(db, w)


def test_mixed_soak_against_independent_count(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    r = EveReader(db, eve, batch_lines=37, max_line=4096)
    for rnd in range(30):
        w.line(rnd * 3 + 1)
        if rnd % 4 == 0:
            w.raw(b"\xc3\x28garbage\n", reason="invalid_utf8")
        if rnd % 5 == 0:
            w.raw(b'{"event_type":"x","big":"' + b"z" * 5000 + b'"}\n', reason="oversized")
        if rnd % 7 == 3:
            os.rename(eve, tmp_path / f"eve.json.{rnd}")
            w.line(2)
            w.reopen()
            w.line(1)
        if rnd % 6 == 5:
            r.close()
            r = EveReader(db, eve, batch_lines=37, max_line=4096)
        r.poll(max_batches=3)
    for _ in range(10):
        r.poll()
    assert_exact(db, w)


def test_unterminated_last_line_of_rotated_file_is_kept_aside(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(3)
    r = EveReader(db, eve)
    assert r.poll() == 3
    w.line(1)
    w.raw(b'{"event_type":"flow","cut', reason="unterminated")
    os.rename(eve, tmp_path / "eve.json.1")
    w.reopen()
    w.line(2)
    for _ in range(3):
        r.poll()
    assert_exact(db, w)


def test_missing_file_waits(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    r = EveReader(db, eve)
    assert r.poll() == 0
    w = Writer(eve)
    w.line(4)
    assert r.poll() == 4
    assert_exact(db, w)


def test_flows_are_counted_and_handed_on_but_not_stored(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(3)
    for i in range(5):
        w.raw(json.dumps({"event_type": "flow", "n": i}).encode() + b"\n")
    w.line(2)
    handed: list = []
    r = EveReader(db, eve, skip_store=frozenset({"flow"}), sink=lambda conn, s: handed.append(s))
    assert r.poll() == 10
    assert_exact(db, w)  # the stored ones, exactly once
    c = counters(db)
    assert c["events"] == 10 and c["events_not_stored"] == 5
    assert sum(len(s.unstored) for s in handed) == 5 and sum(len(s) for s in handed) == 5


def secret_file(tmp_path: Path) -> Path:
    """A root-only file that happens to be valid EVE (the worst case: it would be stored without a trace)."""
    secret = tmp_path / "shadow"
    rec = {"timestamp": "2024-04-01T12:00:00.000000+0900", "event_type": "dns", "seq": 999, "secret": "x"}
    secret.write_text(json.dumps(rec) + "\n")
    secret.chmod(0o600)
    return secret


def test_symlinked_eve_file_is_refused_not_read(tmp_path: Path, db: Database, caplog) -> None:
    eve = tmp_path / "eve.json"
    eve.symlink_to(secret_file(tmp_path))
    r = EveReader(db, eve)
    for _ in range(5):
        assert r.poll() == 0
    assert stored_seqs(db) == [] and quarantined(db) == Counter()
    assert counters(db).get("refused_file") == 1  # counted once, not at every poll
    assert [rec.levelname for rec in caplog.records if "refused" in rec.getMessage()] == ["ERROR"]
    eve.unlink()  # the link goes and Suricata writes a real file again: read as usual
    w = Writer(eve)
    w.line(2)
    assert r.poll() == 2 and stored_seqs(db) == [0, 1]


def test_rotation_to_a_symlink_is_refused_and_the_old_file_kept(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(3)
    r = EveReader(db, eve)
    assert r.poll() == 3
    w.line(1)  # written before the swap: still read from the renamed file
    os.rename(eve, tmp_path / "eve.json.1")
    eve.symlink_to(secret_file(tmp_path))
    assert r.poll() == 1
    assert r.poll() == 0
    assert stored_seqs(db) == [0, 1, 2, 3] and counters(db).get("refused_file") == 1
    assert not counters(db).get("rotations")


def test_restart_on_a_symlink_does_not_follow_it_to_the_rotated_file(tmp_path: Path, db: Database) -> None:
    eve = tmp_path / "eve.json"
    w = Writer(eve)
    w.line(2)
    EveReader(db, eve).poll()
    rotated = tmp_path / "eve.json.1"
    os.rename(eve, rotated)
    eve.symlink_to(secret_file(tmp_path))
    w.line(1)  # Suricata still writing to the renamed file
    r = EveReader(db, eve)  # a restart: resumes in the renamed file, never reads the link
    assert r.poll() == 1 and stored_seqs(db) == [0, 1, 2]
    assert not counters(db).get("rotation_unseen")


@pytest.mark.parametrize("kind", ["hardlink", "fifo", "directory"])
def test_hard_links_fifos_and_directories_are_refused(tmp_path: Path, db: Database, kind: str) -> None:
    eve = tmp_path / "eve.json"
    if kind == "hardlink":
        os.link(secret_file(tmp_path), eve)
    elif kind == "fifo":
        os.mkfifo(eve)  # a plain open would wait for a writer for ever
    else:
        eve.mkdir()
    r = EveReader(db, eve)
    assert r.poll() == 0 and r.poll() == 0
    assert stored_seqs(db) == [] and counters(db).get("refused_file") == 1
