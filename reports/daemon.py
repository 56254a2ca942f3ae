"""The monthly report on schedule: after the 1st of each month (clinic time), last month's report is made.

Catch-up rather than an exact trigger: every check makes the previous month's report if there is no
successful one yet, so a box that was off on the 1st still produces it when it comes back.
Mail: when notifications.email is configured, `after_generate` mails the PDF (reports.mail, through the
incident notifications' SMTP sender); the report is kept on the box either way.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from appliance import queries as core_queries
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.notify import EmailChannel
from appliance.subsystem import Context
from reports.mail import mail_report
from reports.month_data import previous_month
from reports.monthly import GeneratedReport, generate, has_report

log = logging.getLogger(__name__)

CHECK_EVERY_S = 3600.0
RETRY_AFTER_FAILURE_S = 6 * 3600.0


class MonthlyReportWorker:
    name = "reports-monthly"

    def __init__(self, ctx: Context, cfg: MamoriConfig, clock: Callable[[], float] = time.time,
                 interval: float = CHECK_EVERY_S, mail_channel: EmailChannel | None = None) -> None:  # fmt: skip
        self.ctx = ctx
        self.tz = cfg.clinic.timezone
        self.cfg = cfg
        self.mail_configured = cfg.notifications.email is not None
        self.mail_channel = mail_channel  # None: built from the config when a report is mailed
        self.clock = clock
        self.interval = interval
        self._failed_at: dict[str, float] = {}

    def due(self) -> str | None:
        """The month whose report should be made now, or None."""
        now = self.clock()
        month = previous_month(now, self.tz)
        if has_report(self.ctx, month.label) or not self._existed_during(month.end):
            return None
        failed = self._failed_at.get(month.label)
        return None if failed is not None and now - failed < RETRY_AFTER_FAILURE_S else month.label

    def _existed_during(self, month_end: float) -> bool:
        """No report for a month before the box was set up (its first config revision)."""
        return core_queries.any_revision_before(self.ctx.db, month_end)

    def run_once(self) -> GeneratedReport | None:
        label = self.due()
        if label is None:
            return None
        try:
            report = generate(self.ctx, previous_month(self.clock(), self.tz), now=self.clock())
        except (MamoriError, OSError, sqlite3.Error) as exc:
            self._failed_at[label] = self.clock()
            log.error("reports: monthly report %s failed: %s", label, exc)
            return None
        self.after_generate(report)
        return report

    def after_generate(self, report: GeneratedReport) -> None:
        if self.mail_configured:
            mail_report(self.ctx, self.cfg, report, self.mail_channel)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            stop.wait(self.interval)


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list[MonthlyReportWorker]:
    return [MonthlyReportWorker(ctx, cfg)]
