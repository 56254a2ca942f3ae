"""Glue between the EVE reader and the alert/incident tables, and the hook for automatic response.

`AlertIngest.sink` runs inside the reader's transaction: alerts are normalised and grouped into incidents
atomically with the events and the read position (exactly once). `on_commit` runs after the commit and
hands each new alert with its incident to the responders (auto-block, notifications): side effects
happen only for alerts that are durably stored.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from ids.alerts import Alert, AlertFormatError, Resolver, normalise
from ids.eve_reader import Event, add_counters
from ids.incidents import record_alert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredAlert:
    alert: Alert
    incident_id: int
    new_incident: bool


Responder = Callable[[list[StoredAlert]], None]


class AlertIngest:
    """Sink + on_commit pair for EveReader."""

    def __init__(self, cfg: MamoriConfig, responders: list[Responder] | None = None) -> None:
        self.resolver = Resolver(cfg)
        self.window_s = parse_duration(cfg.ids.incident_window)
        self.responders = list(responders or [])
        self._pending: list[StoredAlert] = []

    def sink(self, conn: sqlite3.Connection, events: list[Event]) -> None:
        self._pending = []
        bad = 0
        for ev in events:
            if ev.record.get("event_type") != "alert":
                continue
            try:
                alert = normalise(ev.record, self.resolver, received=ev.received)
            except AlertFormatError as exc:
                bad += 1
                log.warning("EVE alert %d not usable: %s", ev.id, exc.text("en"))
                continue
            incident_id, new = record_alert(conn, alert, self.window_s, event_id=ev.id)
            self._pending.append(StoredAlert(alert, incident_id, new))
        add_counters(conn, {"alerts": len(self._pending), "alert_malformed": bad})

    def on_commit(self, events: list[Event]) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        for responder in self.responders:
            try:
                responder(pending)
            except Exception:  # a failing responder must not stop ingestion; it is logged with its trace
                log.exception("IDS responder %r failed", responder)
