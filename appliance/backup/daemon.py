"""The scheduled backup: once a day at the configured time (clinic time zone), keep N generations.

A box that was off at the scheduled time catches up once when it next runs. The day's attempt is
remembered in the kv table, so a daemon restart does not make a second backup, and a failure is not
retried in a tight loop: it is recorded (backup_runs, audit log) for the checklist and the monthly report,
and tried again the next day. Without a passphrase the worker records that backups are not set up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.backup import records
from appliance.backup.api import create_backup
from appliance.backup.errors import BackupError, NoPassphraseError
from appliance.backup.model import BackupConfig
from appliance.backup.passphrase import load_passphrase
from appliance.backup.store import resolve_dir
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context

log = logging.getLogger(__name__)

LAST_RUN_KEY = "backup.last_scheduled_day"
POLL_SECONDS = 30.0


class ScheduledBackup:
    """A daemon Worker. `clock` is injectable so tests can move time instead of waiting for it."""

    name = "backup.scheduled"

    def __init__(
        self,
        ctx: Context,
        cfg: BackupConfig,
        tz: ZoneInfo,
        clock: Callable[[], float] = time.time,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.ctx, self.cfg, self.tz, self.clock, self.poll = ctx, cfg, tz, clock, poll
        self._migrated = False

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(self.poll)

    def due_day(self, now: float) -> str | None:
        """The local date whose backup is due now, or None (not yet time, or that day already done)."""
        local = datetime.fromtimestamp(now, self.tz)
        hour, minute = (int(x) for x in self.cfg.time.split(":"))
        if (local.hour, local.minute) < (hour, minute):
            return None
        day = local.date().isoformat()
        last = self.ctx.db.get_kv(LAST_RUN_KEY)
        # ISO dates compare as text; a clock stepped back a day must not make the same backup again
        return None if last is not None and day <= last else day

    def tick(self) -> Path | None:
        """Make the day's backup if it is due. Returns the archive made, if any."""
        if not self._migrated:
            self.ctx.db.migrate()
            self._migrated = True
        now = self.clock()
        day = self.due_day(now)
        if day is None:
            return None
        self.ctx.db.set_kv(LAST_RUN_KEY, day)
        passphrase = load_passphrase(self.ctx.paths)
        if passphrase is None:
            err = NoPassphraseError()
            log.warning("backup: scheduled backup skipped: %s", err.text("en"))
            records.record_run(self.ctx.db, kind="scheduled", ok=False, error_code=err.code, error=err.text("en"),
                               actor="daemon")  # fmt: skip
            return None
        directory = resolve_dir(self.ctx.paths, self.cfg.dir)
        try:
            path = create_backup(self.ctx, passphrase, directory, keep=self.cfg.keep, actor="daemon",
                                 source="daemon", kind="scheduled", now=now)  # fmt: skip
        except BackupError as exc:
            log.error("backup: scheduled backup failed (recorded; next try tomorrow): %s", exc.text("en"))
            return None
        log.info("backup: scheduled backup written to %s", path)
        return path


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[ScheduledBackup]:
    backup_cfg = getattr(cfg, "backup", None) or BackupConfig()
    if not backup_cfg.enabled:
        return []
    return [ScheduledBackup(ctx, backup_cfg, ZoneInfo(cfg.clinic.timezone))]
