"""Which incidents are announced and when: the rate limit (folding, never dropping) and the daily digest,
with a fake clock; and the daemon's worker against a real HTTP receiver on loopback."""

from __future__ import annotations

from pathlib import Path

from appliance.notify import Message
from appliance.notify.folding import Notifier
from tests.unit.test_notify_channels import cfg_with, http_rx, incident  # noqa: F401  (http_rx: fixture)

# -- policy ---------------------------------------------------------------------------------------------


class Recorder:
    name = "recorder"

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Message] = []
        self.fail = fail

    def send(self, msg: Message) -> None:
        if self.fail:
            raise OSError("network unreachable")
        self.sent.append(msg)


def test_rate_limit_folds_and_never_drops() -> None:
    now = [1000.0]
    rec = Recorder()
    n = Notifier(cfg_with({"min_interval": "10m"}), [rec], clock=lambda: now[0])
    n.offer([incident(1)])
    assert n.flush() is not None
    n.offer([incident(2), incident(3, sid=2009358, severity=2), incident(4, severity=3)])
    assert n.flush() is None  # within 10 minutes
    now[0] += 600
    msg = n.flush()
    assert msg is not None and "ほか1件" in msg.subject
    assert "#2" in msg.body and "#3" in msg.body and "#4" not in msg.body  # 低 waits for the digest
    assert len(rec.sent) == 2 and n.flush() is None
    assert "管理者権限を奪う試み" in rec.sent[1].body and "MAMORI RDP" not in rec.sent[1].body


def test_digest_and_failure_counting() -> None:
    rec, broken = Recorder(), Recorder(fail=True)
    n = Notifier(cfg_with({"daily_digest": True}), [broken, rec])
    msg = n.send_digest([incident(1), incident(2, severity=3)])
    assert msg.subject.endswith("日次まとめ") and "高 1件 / 中 0件 / 低 1件" in msg.body
    assert n.sent == 1 and n.failed == 1
    assert Notifier(cfg_with({"daily_digest": False}), [rec]).send_digest([]) is None
    assert "異常はありませんでした" in Notifier(cfg_with({}), [rec]).send_digest([]).body


def test_notify_worker_announces_new_incidents_once_and_sends_the_digest(tmp_path: Path, http_rx) -> None:  # noqa: F811
    import time

    from appliance.clock import clinic_time
    from appliance.notify.worker import NotifyWorker
    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context
    from ids.alerts import Alert, Endpoint
    from ids.incidents import record_alert

    base, got = http_rx
    db = Database(tmp_path / "m.db")
    db.migrate()
    ctx = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), db)
    cfg = cfg_with({"webhook": {"url": base + "/hook"}, "min_interval": "10m"})
    ts = time.time()
    a = Alert(
        ts,
        1990001,
        1,
        "MAMORI RDP",
        "Attempted Administrator Privilege Gain",
        1,
        Endpoint("198.51.100.66", 1, "internet", None),
        Endpoint("203.0.113.2", 3389, "box", None),
        "TCP",
    )
    with db.transaction() as conn:
        record_alert(conn, a, 3600)
    worker = NotifyWorker(ctx, cfg)
    morning = clinic_time(ts).replace(hour=9, minute=0, second=0, microsecond=0).timestamp()  # 09:00 in Tokyo
    worker.step(now=morning)
    worker.step(now=morning + 5)
    subjects = [g["body"]["subject"] for g in got]
    assert len(subjects) == 2 and "リモートデスクトップ" in subjects[0] and subjects[1].endswith("日次まとめ")
