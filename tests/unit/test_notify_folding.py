"""Which incidents are announced and when, kept in the state database: the rate limit (folding, never
dropping), the daily digest, and a restart between seeing incidents and sending the message (the
"25 incidents, one message reached the webhook" bug), with a fake clock; and the daemon's workers against
a real webhook receiver on loopback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.clock import clinic_time, wall
from appliance.notify.folding import Folding
from appliance.notify.outbox import Outbox
from appliance.notify.worker import ChannelSender, NotifyWorker
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from ids.alerts import Alert, Endpoint
from ids.announce import NEWS
from ids.incidents import record_alert
from tests.unit.test_notify_channels import cert_dir, cfg_with, http_rx, webhook_cfg  # noqa: F401  (fixtures)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    return Context(paths, db)


def add_incident(db: Database, n: int, ts: float, severity: int = 1) -> int:
    """A real alert stored the way the EVE ingest stores it; a distinct source makes a distinct incident."""
    sid, category = {1: (1990001, "Attempted Administrator Privilege Gain"),
                     2: (2009358, "Attempted Administrator Privilege Gain"),
                     3: (2010937, "Potentially Bad Traffic")}[severity]  # fmt: skip
    alert = Alert(ts, sid, 1, "MAMORI test", category, severity, Endpoint(f"198.51.100.{n}", 40000, "internet", None),
                  Endpoint("203.0.113.2", 3389, "box", None), "TCP")  # fmt: skip
    with db.transaction() as conn:
        return record_alert(conn, alert, 3600)[0]


def outbox_rows(db: Database) -> list[sqlite3.Row]:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM notify_outbox ORDER BY id").fetchall()


def test_rate_limit_folds_and_never_drops(ctx: Context) -> None:
    now = [wall()]
    fold = Folding(
        ctx.db, cfg_with({"min_interval": "10m"}), ["webhook", "email"], NEWS, clock=lambda: now[0]
    )
    first = add_incident(ctx.db, 1, now[0])
    fold.collect()
    msg = fold.flush()
    assert msg is not None and f"#{first}" in msg.body
    assert [(r["channel"], r["msg_id"], r["state"]) for r in outbox_rows(ctx.db)] == [
        ("webhook", msg.id, "pending"), ("email", msg.id, "pending")]  # fmt: skip
    ids = [
        add_incident(ctx.db, 2, now[0]),
        add_incident(ctx.db, 3, now[0], 2),
        add_incident(ctx.db, 4, now[0], 3),
    ]
    assert fold.collect() == 2  # 低 waits for the digest
    assert fold.flush() is None  # within 10 minutes
    now[0] += 600
    msg = fold.flush()
    assert msg is not None and "ほか1件" in msg.subject and msg.kind == "incidents"
    assert f"#{ids[0]}" in msg.body and f"#{ids[1]}" in msg.body and f"#{ids[2]}" not in msg.body
    assert "管理者権限を奪う試み" in msg.body
    assert fold.flush() is None and fold.pending() == []
    assert len(outbox_rows(ctx.db)) == 4


def test_a_restart_while_incidents_wait_loses_none(ctx: Context) -> None:
    """25 incidents while the interval holds the message back, then the process dies: the incidents are in
    notify_pending (the cursor moved with them in one transaction), and the next process sends them all."""
    now = [wall()]
    cfg = cfg_with({"min_interval": "10m"})
    fold = Folding(ctx.db, cfg, ["webhook"], NEWS, clock=lambda: now[0])
    add_incident(ctx.db, 1, now[0])
    fold.collect()
    fold.flush()
    ids = [add_incident(ctx.db, 10 + i, now[0]) for i in range(25)]
    fold.collect()
    assert fold.flush() is None
    del fold  # the daemon is killed here

    now[0] += 601
    again = Folding(ctx.db, cfg, ["webhook"], NEWS, clock=lambda: now[0])
    assert again.collect() == 0, "the cursor had moved: nothing is seen twice"
    msg = again.flush()
    assert msg is not None and "ほか24件" in msg.subject
    assert all(f"#{i}" in msg.body for i in ids[:20]) and "ほか 5 件" in msg.body  # 20 written out, 5 counted


def test_first_run_announces_the_last_day_not_history(ctx: Context) -> None:
    now = wall()
    add_incident(ctx.db, 1, now - 3 * 86400)
    recent = add_incident(ctx.db, 2, now - 3600)
    fold = Folding(ctx.db, cfg_with({}), ["webhook"], NEWS, clock=lambda: now)
    assert fold.collect() == 1 and fold.pending() == [recent]


def test_digest_once_a_day_from_eight_clinic_time(ctx: Context) -> None:
    now = wall()
    add_incident(ctx.db, 1, now - 60)
    add_incident(ctx.db, 2, now - 60, severity=3)
    seven = clinic_time(now).replace(hour=7, minute=59, second=0, microsecond=0).timestamp()
    fold = Folding(ctx.db, cfg_with({"daily_digest": True}), ["webhook"], NEWS, clock=lambda: seven)
    assert fold.send_digest(seven) is None
    msg = fold.send_digest(seven + 60)
    assert msg is not None and msg.subject.endswith("日次まとめ") and msg.kind == "digest"
    assert "高 1件 / 中 0件 / 低 1件" in msg.body
    assert fold.send_digest(seven + 3600) is None, "once per day"
    assert [r["kind"] for r in outbox_rows(ctx.db)] == ["digest"]
    off = Folding(ctx.db, cfg_with({"daily_digest": False}), ["webhook"], NEWS)
    assert off.send_digest(seven + 86400 + 60) is None


def test_workers_announce_new_incidents_once_and_the_digest(ctx: Context, http_rx) -> None:  # noqa: F811
    base, got = http_rx
    cfg = cfg_with({"webhook": webhook_cfg(base + "/hook"), "min_interval": "10m"})
    ts = wall()
    add_incident(ctx.db, 1, ts)
    morning = clinic_time(ts).replace(hour=9, minute=0, second=0, microsecond=0).timestamp()  # 09:00 in Tokyo
    worker = NotifyWorker(ctx, cfg, NEWS)
    worker.step(now=morning)
    worker.step(now=morning + 5)
    assert got == [], "the worker only writes to the outbox"
    from appliance.notify.channels import channels

    (webhook,) = channels(cfg, ctx.paths.keys_dir)
    assert ChannelSender(webhook, Outbox(ctx.db)).step() == 2
    subjects = [g["body"]["subject"] for g in got]
    assert len(subjects) == 2 and "リモートデスクトップ" in subjects[0] and subjects[1].endswith("日次まとめ")
    assert ChannelSender(webhook, Outbox(ctx.db)).step() == 0 and len(got) == 2, "delivered once"
