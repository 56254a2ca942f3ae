"""Retention: every growing table has an age rule, the areas together stay within one disk budget, and
what is evidence or still open is never pruned."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from appliance import retention
from appliance.audit import AuditLog
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.daemon import collect_workers
from appliance.paths import Paths
from appliance.retention import MB, Policy, run_once, used_bytes
from appliance.storage import Database
from appliance.subsystem import Context

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"
DAY = 86400.0


def config(**storage: int) -> MamoriConfig:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["storage"] = storage
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "state" / "mamori.db")
    db.migrate()
    return db


def count(db: Database, table: str, where: str = "1") -> int:
    with db.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def _fill_ages(db: Database, now: float) -> None:
    """One old and one recent row in every growing table (old: six years, past every default age)."""
    old, new = now - 6 * 365 * DAY, now - DAY
    with db.transaction() as conn:
        for ts in (old, new):
            conn.execute(
                "INSERT INTO fw_drops(ts, prefix, src, dst, proto) VALUES (?, 'p', 'a', 'b', 'tcp')", (ts,)
            )
            conn.execute("INSERT INTO fw_history(ts, action, ip) VALUES (?, 'block', '198.51.100.1')", (ts,))
            conn.execute(
                "INSERT INTO fw_device_events(ts, mac, kind, message_ja, message_en) VALUES (?, 'm', 'new', 'j', 'e')",
                (ts,),
            )
            conn.execute(
                "INSERT INTO vpn_peer_log(ts, user, device_id, kind) VALUES (?, 'u', 1, 'connect')", (ts,)
            )
            conn.execute(
                "INSERT INTO vpn_sessions(user, tunnel_ip, started, expires, ended) VALUES ('u', '10.0.0.2', ?, ?, ?)",
                (ts, ts + 3600, ts + 1800),
            )
            conn.execute(
                "INSERT INTO vpn_conn_log(src, user, dst, proto, dport, first_ts, last_ts, verdict)"
                " VALUES ('10.99.0.3', 'u', '192.168.10.20', 'tcp', 443, ?, ?, 'accepted')",
                (ts - 60, ts),
            )
            conn.execute(
                "INSERT INTO vpn_windows(user, starts, ends, reason, targets, approved_by, created)"
                " VALUES ('u', ?, ?, 'r', '[]', 'admin', ?)",
                (ts, ts + 3600, ts),
            )
            conn.execute("INSERT INTO report_runs(ts, month, ok) VALUES (?, '2020-01', 1)", (ts,))
            conn.execute("INSERT INTO backup_runs(ts, kind, ok) VALUES (?, 'scheduled', 1)", (ts,))
            conn.execute("INSERT INTO backup_tests(ts, archive, ok) VALUES (?, 'a', 1)", (ts,))
            conn.execute("INSERT INTO web_login_attempts(remote, ts, ok) VALUES ('r', ?, 0)", (ts,))
            conn.execute(
                "INSERT INTO web_sessions(sid, name, created_at, last_seen) VALUES (?, 'admin', ?, ?)",
                (f"s{ts}", ts, ts),
            )
            for state in ("未対応", "解決済み"):
                conn.execute(
                    "INSERT INTO ids_incidents(sid, src_ip, dest_ip, first_seen, last_seen, count, severity,"
                    " signature, category, state) VALUES (1, 'a', 'b', ?, ?, 1, 1, 's', 'c', ?)",
                    (ts, ts, state),
                )
            conn.execute(
                "INSERT INTO ids_alerts(ts, sid, rev, signature, category, severity, src_ip, dest_ip, proto)"
                " VALUES (?, 1, 1, 's', 'c', 1, 'a', 'b', 'TCP')",
                (ts,),
            )
            conn.execute(
                "INSERT INTO ids_blocks(ts, ip, timeout_s, reason, source) VALUES (?, 'a', 3600, 'r', 'ids')",
                (ts,),
            )
        # an open session started long ago is not touched; neither is a block with no end (timeout 0)
        conn.execute("INSERT INTO vpn_sessions(user, tunnel_ip, started, expires) VALUES ('v', '10.0.0.3', ?, ?)",
                     (old, now + 3600))  # fmt: skip
        conn.execute("INSERT INTO ids_blocks(ts, ip, timeout_s, reason, source) VALUES (?, 'p', 0, 'r', 'manual')",
                     (old,))  # fmt: skip
        conn.execute(
            "INSERT INTO web_password_history(name, password_hash, ts) VALUES ('admin', 'h', ?)", (old,)
        )
        for i in range(7):
            conn.execute(
                "INSERT INTO web_password_history(name, password_hash, ts) VALUES ('x', ?, ?)",
                (f"h{i}", old + i),
            )
        for token, created in (("old", now - 7200), ("new", now - 60)):
            conn.execute("INSERT INTO kv(key, value) VALUES (?, ?)",
                         (f"webui.proposal.{token}", json.dumps({"created": created, "text": ""})))  # fmt: skip


def test_every_area_prunes_by_age_and_keeps_what_is_open(db: Database) -> None:
    now = time.time()
    _fill_ages(db, now)
    report = run_once(db, config(), now)
    assert not report.failed
    for table in ("fw_drops", "fw_history", "fw_device_events", "vpn_peer_log", "vpn_conn_log", "report_runs", "backup_runs",
                  "backup_tests", "web_login_attempts", "web_sessions", "ids_alerts"):  # fmt: skip
        assert count(db, table) == 1, table
        assert report.deleted[table] == 1, table
    assert count(db, "vpn_sessions") == 2 and count(db, "vpn_sessions", "ended IS NULL") == 1
    assert count(db, "vpn_windows") == 1
    # an open incident is never deleted while open; six years without a new alert it is first closed by
    # itself (ids.incident_auto_close_days, audited) and then goes with the old closed one
    assert count(db, "ids_incidents", "state = '未対応'") == 1
    assert count(db, "ids_incidents", "state = '解決済み'") == 1 and report.deleted["ids_incidents"] == 2
    assert "ids.incident.auto_closed" in [e.action for e in AuditLog(db).search(actor="system", limit=20)]
    assert count(db, "ids_blocks") == 2 and count(db, "ids_blocks", "timeout_s = 0") == 1
    assert count(db, "web_password_history", "name = 'x'") == 5
    assert count(db, "web_password_history", "name = 'admin'") == 1
    assert db.get_kv("webui.proposal.old") is None and db.get_kv("webui.proposal.new") is not None


def test_drop_age_follows_the_config(db: Database) -> None:
    now = time.time()
    with db.transaction() as conn:
        for age in (5, 15):
            conn.execute(
                "INSERT INTO fw_drops(ts, prefix, src, dst, proto) VALUES (?, 'p', 'a', 'b', 'tcp')",
                (now - age * DAY,),
            )
    run_once(db, config(drops_days=10), now)
    assert count(db, "fw_drops") == 1


def test_revisions_live_pending_and_newest_are_kept(db: Database) -> None:
    now = time.time()
    old = now - 6 * 365 * DAY
    with db.transaction() as conn:
        for i in range(retention.KEEP_REVISIONS + 10):
            status = {0: "applied", 1: "pending"}.get(i, "superseded")
            conn.execute(
                "INSERT INTO revisions(created_at, author, source, config_text, sha256, status)"
                " VALUES (?, 'a', 'cli', 'x', 'h', ?)",
                (old + i, status),
            )
    report = run_once(db, config(), now)
    assert report.deleted["revisions"] == 8  # 60 old: the newest 50 stay, and ids 1-2 are live/pending
    assert count(db, "revisions", "status IN ('applied', 'pending')") == 2
    assert count(db, "revisions") == retention.KEEP_REVISIONS + 2


def test_audit_kept_five_years_and_verifiable_after_pruning(db: Database, time_machine) -> None:  # type: ignore[no-untyped-def]
    audit = AuditLog(db)
    start = time.time()
    time_machine.move_to(start - 6 * 365 * DAY, tick=False)
    audit.record("admin", "config.apply", {"n": 1})
    time_machine.move_to(start - 4 * 365 * DAY, tick=False)
    audit.record("admin", "config.apply", {"n": 2})
    time_machine.move_to(start, tick=False)
    report = run_once(db, config(), start)
    assert report.deleted["audit"] == 1
    assert [e.detail.get("n") for e in audit.search()] == [None, 2]  # audit.pruned, then the 4-year-old one
    assert audit.verify().ok


def _fill_events(db: Database, n: int, now: float) -> None:
    raw = json.dumps({"event_type": "dns", "pad": "x" * 900})
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO ids_events(received, ts, event_type, size, raw) VALUES (?, ?, 'dns', ?, ?)",
            [(now - (n - i), now - (n - i), len(raw), raw) for i in range(n)],
        )


def test_ids_share_of_the_budget_keeps_the_newest(db: Database) -> None:
    now = time.time()
    _fill_events(db, 8000, now)  # ~8 MB
    ids = __import__("ids.retention", fromlist=["retain"])
    deleted = ids.retain(db, Policy(now, 2 * MB, {"ids": 180}))
    with db.connection() as conn:
        left = used_bytes(conn, ids.TABLES)
        first = conn.execute("SELECT min(id), max(id) FROM ids_events").fetchone()
    assert left <= 2 * MB
    assert left > MB  # not everything: only what the share demanded (plus the 5% margin)
    assert first[1] == 8000 and first[0] == deleted["ids_events"] + 1  # the oldest went


def test_budget_returns_pages_to_the_disk(db: Database) -> None:
    """The first run switches the new file to incremental auto-vacuum; then pruning shrinks the file."""
    now = time.time()
    assert retention.ensure_incremental(db)
    _fill_events(db, 20_000, now)  # ~20 MB in a 64 MB budget whose IDS share is 51 MB: nothing to do
    cfg = config(max_db_mb=64)
    before = run_once(db, cfg, now)
    assert before.deleted.get("ids_events", 0) == 0
    _fill_events(db, 50_000, now)  # 70 MB: over the share
    size_full = db.path.stat().st_size
    report = run_once(db, cfg, now)
    assert report.deleted["ids_events"] > 10_000
    assert report.used_after <= 64 * MB
    assert report.file_after < size_full  # free pages went back to the file system
    assert report.file_after <= 64 * MB * 1.05


def test_a_big_old_file_is_not_vacuumed(db: Database) -> None:
    _fill_events(db, 2000, time.time())
    assert not retention.ensure_incremental(db, convert_max=1024)
    with db.connection() as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0


def test_ids_max_db_mb_still_bounds_the_ids(db: Database) -> None:
    pol = retention.policies(config(max_db_mb=100_000), time.time())
    assert pol["ids"].max_bytes == 1024 * MB  # ids.max_db_mb default
    assert pol["firewall"].max_bytes == int(100_000 * MB * retention.SHARES["firewall"])


def test_one_failing_area_does_not_stop_the_others(db: Database) -> None:
    now = time.time()
    _fill_ages(db, now)
    with db.connection() as conn:
        conn.execute("DROP TABLE report_runs")
    report = run_once(db, config(), now)
    assert report.failed == ["reports"]
    assert count(db, "fw_drops") == 1


def test_the_daemon_runs_the_coordinator(tmp_path: Path) -> None:
    paths = Paths(config=tmp_path / "config.yaml", state_dir=tmp_path / "state")
    ctx = Context(paths=paths, db=Database(paths.db))
    ctx.db.migrate()
    assert "retention" in [w.name for w in collect_workers(ctx, config())]


def test_a_clock_thrown_years_ahead_deletes_nothing_by_age_for_a_week(db: Database, time_machine) -> None:  # type: ignore[no-untyped-def]
    """A spoofed time source steps the clock six years forward: retention must not take that as six years gone."""
    from appliance.clockwatch import LAST_STEP_KEY

    audit = AuditLog(db)
    start = time.time()
    time_machine.move_to(start, tick=False)
    audit.record("admin", "config.apply", {"n": 1})
    ahead = start + 6 * 365 * DAY
    time_machine.move_to(ahead, tick=False)
    db.set_kv(LAST_STEP_KEY, json.dumps({"kind": "step", "at": ahead, "delta": 6 * 365 * DAY}))
    assert run_once(db, config(), ahead).deleted.get("audit", 0) == 0
    assert [e.detail.get("n") for e in audit.search()] == [1]
    time_machine.move_to(ahead + 8 * DAY, tick=False)  # a week on, the clock is taken as it is
    assert run_once(db, config(), ahead + 8 * DAY).deleted["audit"] == 1
