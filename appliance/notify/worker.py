"""The daemon's notification worker: announces new incidents (appliance.notify.folding) and sends the daily
digest at DIGEST_HOUR clinic time."""

from __future__ import annotations

import threading

from appliance.clock import Clock, clinic_time, wall
from appliance.config.model import MamoriConfig
from appliance.notify.channels import channels
from appliance.notify.folding import Notifier
from appliance.subsystem import Context


class NotifyWorker:
    name = "notify"
    LAST_KEY, DIGEST_KEY = "ids.notify.last_incident", "ids.notify.digest_day"
    DIGEST_HOUR = 8

    def __init__(self, ctx: Context, cfg: MamoriConfig, tick: float = 2.0, clock: Clock = wall) -> None:
        self.ctx, self.tick, self.tz = ctx, tick, cfg.clinic.timezone
        self.notifier = Notifier(cfg, channels(cfg, ctx.paths.keys_dir), clock=clock)
        self.clock = clock

    def step(self, now: float | None = None) -> None:
        from ids.incidents import list_incidents

        now = self.clock() if now is None else now
        last = int(self.ctx.db.get_kv(self.LAST_KEY) or 0)
        new = [i for i in list_incidents(self.ctx.db, limit=500) if i.id > last]
        if new:
            self.notifier.offer(new)
            self.ctx.db.set_kv(self.LAST_KEY, str(max(i.id for i in new)))
        self.notifier.flush()
        local = clinic_time(now, self.tz)
        day = local.strftime("%Y-%m-%d")
        if local.hour >= self.DIGEST_HOUR and self.ctx.db.get_kv(self.DIGEST_KEY) != day:
            self.ctx.db.set_kv(self.DIGEST_KEY, day)
            recent = [i for i in list_incidents(self.ctx.db, limit=1000) if i.last_seen >= now - 86400]
            self.notifier.send_digest(recent)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.tick)


def daemon_workers(ctx: Context, cfg: MamoriConfig) -> list:
    """The notification workers when a channel is configured."""
    n = cfg.notifications
    if not any((n.email, n.webhook, n.line, n.syslog)):
        return []
    return [NotifyWorker(ctx, cfg)]
