"""The daemon's notification workers.

- NotifyWorker turns new incidents into folded messages and the daily digest, written to the outbox
  (appliance.notify.folding, with the incidents and their text from the `News` the IDS hands in); it never sends anything itself, so a dead mail server cannot slow it down.
- One ChannelSender per configured channel delivers that channel's outbox rows, oldest first, with the
  channel's own timeouts and the outbox's back-off: a slow SMTP server never delays the webhook, and
  nothing here ever waits on the EVE ingest or the other way round.
"""

from __future__ import annotations

import logging
import threading

from appliance.clock import Clock, monotonic, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.notify.channels import SEND_ERRORS, Channel, channels
from appliance.notify.folding import Folding, News
from appliance.notify.outbox import Outbox
from appliance.subsystem import Context

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0


class NotifyWorker:
    name = "notify"

    def __init__(self, ctx: Context, cfg: MamoriConfig, news: News, tick: float = 2.0, clock: Clock = wall,
                 names: list[str] | None = None) -> None:  # fmt: skip
        self.ctx, self.tick, self.clock = ctx, tick, clock
        self.names = names if names is not None else [c.name for c in channels(cfg, ctx.paths.keys_dir)]
        self.folding = Folding(ctx.db, cfg, self.names, news, clock)
        self.outbox = Outbox(ctx.db, clock)
        self._pruned = float("-inf")

    def step(self, now: float | None = None) -> None:
        self.folding.collect()
        self.folding.flush()
        self.folding.send_digest(now)
        if monotonic() - self._pruned > PRUNE_EVERY:
            self._pruned = monotonic()
            self.outbox.cancel_unconfigured(self.names)
            self.outbox.prune()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.tick)


class ChannelSender:
    """Delivers one channel's outbox. After a failure the channel rests until that message's next try
    (the other messages would only meet the same closed door)."""

    def __init__(self, channel: Channel, outbox: Outbox, poll: float = 1.0, mono: Clock = monotonic) -> None:
        self.channel, self.outbox, self.poll, self.mono = channel, outbox, poll, mono
        self.name = f"notify-{channel.name}"
        self._rest_until = float("-inf")  # monotonic

    def step(self) -> int:
        """One pass; returns the messages delivered."""
        if self.mono() < self._rest_until:
            return 0
        sent = 0
        for entry in self.outbox.due(self.channel.name):
            try:
                self.channel.send(entry.msg)
            except SEND_ERRORS as exc:
                wait = self.outbox.failed(entry, exc)
                log.warning("notification %s via %s failed (attempt %d, next in %.0f s): %s",
                            entry.msg.id, self.channel.name, entry.attempts + 1, wait, exc)  # fmt: skip
                if wait:
                    self._rest_until = self.mono() + wait
                    return sent
                continue
            self.outbox.delivered(entry)
            sent += 1
        return sent

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.poll)


def daemon_workers(ctx: Context, cfg: MamoriConfig, news: News) -> list:
    """The notification workers when a channel is configured: the folding of `news` and one sender per
    channel (started by ids.daemon, which hands in its incidents)."""
    chans = channels(cfg, ctx.paths.keys_dir)
    if not chans:
        return []
    first = parse_duration(cfg.notifications.retry_after)
    outbox = Outbox(ctx.db, retry_first=first, retry_max=max(first, 900.0))
    return [NotifyWorker(ctx, cfg, news, names=[c.name for c in chans]),
            *(ChannelSender(c, outbox) for c in chans)]  # fmt: skip
