"""The daemon's update worker: checks the vendor's index on schedule, installs within the quiet hours when
`update.auto` is install, and reports what the root side did (result.json, boot.json) once each.

Scheduling uses monotonic time (a wall clock stepped by NTP neither skips nor repeats a check); the quiet
hours are read on the clinic's wall clock (appliance.clock). A check asked for from the web UI (which runs in
another process, without the right to download) is a flag in the database that this worker picks up.
"""

from __future__ import annotations

import logging
import threading

from appliance.clock import Clock, monotonic, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.subsystem import Context
from update import actions, stage
from update.box import UpdatePaths, box_info
from update.errors import UpdateRefused
from update.schedule import in_quiet_hours
from update.version import Version

log = logging.getLogger(__name__)

KV_CHECK_REQUESTED = "update.check_requested"  # the actor who asked, set by the web UI
KV_AUTO_REQUESTED = "update.auto_requested"  # the staged bundle the schedule already asked to install


def ask_for_check(ctx: Context, actor: str) -> None:
    ctx.db.set_kv(KV_CHECK_REQUESTED, actor)


class UpdateWorker:
    name = "update"

    def __init__(self, ctx: Context, cfg: MamoriConfig, mono: Clock = monotonic, clock: Clock = wall,
                 first_delay: float = 10.0, poll: float = 2.0) -> None:  # fmt: skip
        self.ctx, self.cfg, self.ucfg = ctx, cfg, cfg.update
        self.mono, self.clock, self.poll = mono, clock, poll
        self.interval = float(parse_duration(self.ucfg.check_interval))
        self.next_check = mono() + self._first_delay(first_delay)

    def _first_delay(self, minimum: float) -> float:
        """Workers restart with every config change: the first check waits for what is left of the interval
        since the last one (a wall-clock time, the only one that survives a restart; a last check in the
        future means the clock was stepped back, and the check is not put off for it)."""
        last = actions.last_check(self.ctx)
        since = self.clock() - float(last["at"]) if last else None
        if since is None or since < 0 or since >= self.interval:
            return minimum
        return max(minimum, self.interval - since)

    def step(self) -> None:
        """One pass: report results, run a due or asked-for check, install in the quiet hours."""
        actions.observe(self.ctx, self.cfg)
        asked = self.ctx.db.get_kv(KV_CHECK_REQUESTED)
        scheduled = self.ucfg.auto != "off" and self.mono() >= self.next_check
        if asked or scheduled:
            self.ctx.db.set_kv(KV_CHECK_REQUESTED, None)
            self.next_check = self.mono() + self.interval
            if self.ucfg.source:
                outcome = actions.check(
                    self.ctx, self.cfg, self.ucfg, asked or "system", "web" if asked else "daemon"
                )
                log.info("update check: %s %s %s", outcome.outcome, outcome.version, outcome.code)
        if self.ucfg.auto == "install":
            self.maybe_install()

    def maybe_install(self) -> None:
        upaths = UpdatePaths.of(self.ctx.paths)
        staged = stage.current_staged(upaths)
        if staged is None or self.ctx.db.get_kv(KV_AUTO_REQUESTED) == staged.name:
            return
        box = box_info(upaths)
        if box.version is not None and Version.parse(staged.version) <= box.version:
            return  # the schedule only ever installs a newer version; a rollback is a person's decision
        if not in_quiet_hours(self.ucfg.quiet_hours, self.clock(), self.cfg.clinic.timezone):
            return
        if stage.in_progress(upaths):
            return
        self.ctx.db.set_kv(KV_AUTO_REQUESTED, staged.name)  # once per bundle, whatever the outcome
        try:
            actions.request(self.ctx, self.cfg, "now", "system", "daemon")
        except UpdateRefused as exc:
            log.warning("scheduled install refused: %s", exc.text("en"))

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll):
            self.step()
