"""Glue between the EVE reader and the alert/incident tables, and the hook for automatic response.

`AlertIngest.sink` runs inside the reader's transaction: alerts are normalised and grouped into incidents
atomically with the events and the read position (exactly once). `on_commit` runs after the commit and
hands each new alert with its incident to the responders (auto-block, notifications): side effects
happen only for alerts that are durably stored.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from appliance.config.model import MamoriConfig
from appliance.config.types import parse_duration
from appliance.storage import set_kv
from ids.alerts import Alert, AlertFormatError, Resolver, normalise
from ids.eve_reader import Stored, add_counters
from ids.flows import FlowAnalyzer
from ids.incidents import record_alerts

log = logging.getLogger(__name__)


STATS_KEY = "ids.suricata.stats"


def severity_counter(severity: int) -> str:
    """The ids_counters name of the running count of alerts of one Suricata severity (1 highest; 4+ as 3)."""
    return f"alerts_severity_{min(max(int(severity), 1), 3)}"


def capture_stats(record: dict) -> dict:
    """The few numbers of a Suricata stats record that tell whether it keeps up (drops) and works."""
    stats = record.get("stats") if isinstance(record.get("stats"), dict) else {}
    capture = stats.get("capture") if isinstance(stats.get("capture"), dict) else {}
    detect = stats.get("detect") if isinstance(stats.get("detect"), dict) else {}
    decoder = stats.get("decoder") if isinstance(stats.get("decoder"), dict) else {}

    def num(value: object) -> int | None:
        return (
            value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None
        )

    return {"timestamp": str(record.get("timestamp", ""))[:40], "uptime": num(stats.get("uptime")),
            "packets": num(decoder.get("pkts")), "kernel_packets": num(capture.get("kernel_packets")),
            "kernel_drops": num(capture.get("kernel_drops")), "alerts": num(detect.get("alert"))}  # fmt: skip


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
        self.flows = FlowAnalyzer(cfg, self.resolver)
        self._pending: list[StoredAlert] = []

    def sink(self, conn: sqlite3.Connection, stored: Stored) -> None:
        self._pending = []
        bad = 0
        items: list[tuple[Alert, int | None]] = []
        for ev in stored.of_type("alert"):
            try:
                items.append((normalise(ev.record, self.resolver, received=ev.received), ev.id))
            except AlertFormatError as exc:
                bad += 1
                log.warning("EVE alert %d not usable: %s", ev.id, exc.text("en"))
            except Exception:  # a bug meeting odd input must not stall ingestion on this batch forever
                bad += 1
                log.exception("EVE alert %d could not be normalised", ev.id)
        for records in (stored.unstored, stored.records):
            items += [(a, None) for a in self.flows.analyse(records, stored.received)]
        if items:
            results = record_alerts(conn, items, self.window_s)
            self._pending = [
                StoredAlert(a, iid, new) for (a, _), (iid, new) in zip(items, results, strict=True)
            ]
        by_severity: dict[str, int] = {}
        for item in self._pending:  # running totals per severity: the metrics' counters (ids/queries.py)
            key = severity_counter(item.alert.severity)
            by_severity[key] = by_severity.get(key, 0) + 1
        add_counters(conn, {"alerts": len(self._pending), "alert_malformed": bad, **by_severity})
        stats = [r for r in stored.unstored if r.get("event_type") == "stats"]
        stats += [e.record for e in stored.of_type("stats")]
        if stats:
            last = stats[-1]
            set_kv(conn, STATS_KEY, json.dumps(capture_stats(last)))

    def on_commit(self, stored: Stored) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        for responder in self.responders:
            try:
                responder(pending)
            except Exception:  # a failing responder must not stop ingestion; it is logged with its trace
                log.exception("IDS responder %r failed", responder)
