"""Which incidents are announced and when.

Policy: a new incident of 重要度 高 or 中 is announced; at most one message per `notifications.min_interval`
(what arrives meanwhile is folded into the next message, never dropped); 低 only appears in the digest.
The digest (once a day, if `daily_digest`) lists the last 24 hours.
"""

from __future__ import annotations

import logging

from appliance.clock import Clock, wall
from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.notify.channels import SEND_ERRORS, Channel
from appliance.notify.message import Message, compose, digest
from ids.incidents import Incident

log = logging.getLogger(__name__)


class Notifier:
    """Decides what to send and when (rate limit, folding, digest). Pure apart from `channels`."""

    def __init__(self, cfg: MamoriConfig, chans: list[Channel], clock: Clock = wall) -> None:
        self.clinic, self.tz = cfg.clinic.name, cfg.clinic.timezone
        self.interval = parse_duration(cfg.notifications.min_interval)
        self.daily = cfg.notifications.daily_digest
        self.channels = chans
        self.clock = clock
        self.pending: list[Incident] = []
        self.last_sent = float("-inf")
        self.sent = 0
        self.failed = 0

    def offer(self, incidents: list[Incident]) -> None:
        """New incidents; 低 go only to the digest."""
        self.pending += [i for i in incidents if i.severity <= 2]

    def flush(self) -> Message | None:
        """Send what is pending if the interval allows; returns the message sent (or None)."""
        if not self.pending or self.clock() - self.last_sent < self.interval:
            return None
        msg = compose(self.clinic, sorted(self.pending, key=lambda i: (i.severity, -i.last_seen)), self.tz)
        self.pending = []
        self.last_sent = self.clock()
        self._send(msg)
        return msg

    def send_digest(self, incidents: list[Incident]) -> Message | None:
        if not self.daily:
            return None
        msg = digest(self.clinic, incidents)
        self._send(msg)
        return msg

    def _send(self, msg: Message) -> None:
        for ch in self.channels:
            try:
                ch.send(msg)
                self.sent += 1
            except SEND_ERRORS as exc:
                self.failed += 1
                log.error("notification via %s failed: %s", ch.name, exc)
