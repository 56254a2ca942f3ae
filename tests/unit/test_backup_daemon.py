"""The scheduled backup worker with a fake clock: runs once a day at the set time, catches up, records."""

from __future__ import annotations

import shutil
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.audit import AuditLog
from appliance.backup import crypto
from appliance.backup.daemon import ScheduledBackup, daemon_workers
from appliance.backup.model import BackupConfig
from appliance.backup.passphrase import set_passphrase
from appliance.backup.records import backup_status
from appliance.backup.store import generations
from appliance.config import parse_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from lab.waiting import wait_or_fail

REPO = Path(__file__).resolve().parents[2]
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(autouse=True)
def cheaper_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "SCRYPT_N", 1 << 14)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    config = tmp_path / "config.yaml"
    shutil.copy(REPO / "examples" / "clinic.yaml", config)
    paths = Paths(config, tmp_path / "state")
    paths.ensure()
    context = Context(paths, Database(paths.db))
    context.db.migrate()
    return context


class Clock:
    def __init__(self, *when: int) -> None:
        self.now = datetime(*when, tzinfo=TOKYO).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, *when: int) -> None:
        self.now = datetime(*when, tzinfo=TOKYO).timestamp()


def test_runs_once_a_day_at_the_set_time_in_clinic_time(ctx: Context, tmp_path: Path) -> None:
    set_passphrase(ctx.paths, "sakura no hana ga saku")
    clock = Clock(2026, 11, 26, 2, 59)
    worker = ScheduledBackup(ctx, BackupConfig(time="03:00", keep=2, dir=str(tmp_path / "nas")), TOKYO, clock)
    assert worker.tick() is None
    clock.set(2026, 11, 26, 3, 0)
    first = worker.tick()
    assert first is not None and first.parent == tmp_path / "nas"
    clock.set(2026, 11, 26, 23, 59)
    assert worker.tick() is None  # the day's backup is done
    made = [first]
    for day in (27, 28, 29):
        clock.set(2026, 11, day, 3, 1, day)  # seconds differ, so names differ
        path = worker.tick()
        assert path is not None
        made.append(path)
    assert generations(tmp_path / "nas") == made[-2:]
    status = backup_status(ctx.db)
    assert status.last_ok_backup is not None and status.last_ok_backup.kind == "scheduled"
    actions = [e.action for e in AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key").search(actor="daemon")]
    assert actions.count("backup.create") == 4 and "backup.prune" in actions


def test_a_missed_backup_is_caught_up_once_and_survives_a_restart(ctx: Context) -> None:
    set_passphrase(ctx.paths, "sakura no hana ga saku")
    clock = Clock(2026, 11, 26, 10, 30)  # the box was off at 03:00
    assert ScheduledBackup(ctx, BackupConfig(), TOKYO, clock).tick() is not None
    assert ScheduledBackup(ctx, BackupConfig(), TOKYO, clock).tick() is None  # daemon restarted
    assert len(generations(ctx.paths.state_dir / "backups")) == 1


def test_a_clock_stepped_back_a_day_does_not_make_the_backup_again(ctx: Context) -> None:
    set_passphrase(ctx.paths, "sakura no hana ga saku")
    clock = Clock(2026, 11, 27, 3, 5)
    worker = ScheduledBackup(ctx, BackupConfig(), TOKYO, clock)
    assert worker.tick() is not None
    clock.set(2026, 11, 26, 3, 30)  # a bad time source steps the clock back into yesterday
    assert worker.tick() is None
    clock.set(2026, 11, 28, 3, 5)
    assert worker.tick() is not None
    assert len(generations(ctx.paths.state_dir / "backups")) == 2


def test_without_a_passphrase_the_failure_is_recorded_once_a_day(ctx: Context) -> None:
    clock = Clock(2026, 11, 26, 4, 0)
    worker = ScheduledBackup(ctx, BackupConfig(), TOKYO, clock)
    assert worker.tick() is None and worker.tick() is None
    status = backup_status(ctx.db)
    assert status.last_ok_backup is None
    assert status.last_backup is not None and not status.last_backup.ok
    assert "no backup passphrase" in status.last_backup.error
    with ctx.db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM backup_runs").fetchone()[0] == 1


def test_run_loop_stops_when_asked(ctx: Context) -> None:
    set_passphrase(ctx.paths, "sakura no hana ga saku")
    worker = ScheduledBackup(ctx, BackupConfig(), TOKYO, Clock(2026, 11, 26, 3, 0), poll=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:  # bounded on the monotonic clock, and long: CI runs this at nice 19 beside the integration tests
        wait_or_fail(lambda: generations(ctx.paths.state_dir / "backups"), 120, "the first backup", step=0.05)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the backup loop did not stop within 60 s of being asked"
    assert len(generations(ctx.paths.state_dir / "backups")) == 1


def test_daemon_workers_follow_the_config(ctx: Context) -> None:
    text = (REPO / "examples" / "clinic.yaml").read_text()
    on = parse_config(text).model
    workers = daemon_workers(ctx, on)
    assert [w.name for w in workers] == ["backup.scheduled"]
    off = parse_config(text + "\nbackup:\n  enabled: false\n").model
    assert daemon_workers(ctx, off) == []
