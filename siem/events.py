"""Mamori's records as RFC 5424 syslog messages: pure functions, no I/O.

One message per event, one line (the spool is read line by line), at most MAX_LINE bytes:

    <PRI>1 TIMESTAMP HOSTNAME mamori - MSGID [mamori@32473 box="…" event="audit-1234" …] text

- HOSTNAME and `box` are the box's id (siem.box_id, or the one made on the box); `event` is
  "<source>-<row id>" (audit-N, incident-N, alert-N): stable across resends, so a collector can
  recognise a duplicate. TIMESTAMP is when the event happened (UTC, microseconds), not when it was sent.
- MSGID says what it is: audit, apply (config changes), update (IDS rules, firmware), incident, alert.
- 32473 is the private enterprise number RFC 5612 reserves for documentation; Mamori has none of its own.
- Everything that may come from the network (signatures, addresses, audit details) is escaped: control
  characters become \\xNN text (no newline can split a message), and in SD-PARAM values '"', '\\' and ']'
  are backslash-escaped (RFC 5424 §6.3.3). MSG is UTF-8 without a BOM (MSG-ANY): collectors show a BOM
  as a stray character more often than they use it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

SD_ID = "mamori@32473"
APP_NAME = "mamori"
MAX_LINE = 8000  # bytes; rsyslog's maxMessageSize is set above it (siem/render.py)
FACILITY_AUDIT = 13  # "log audit"
FACILITY_ALERT = 14  # "log alert"
# syslog severities: 2 critical, 4 warning, 5 notice, 6 informational
IDS_SEVERITY: dict[int, int] = {1: 2, 2: 4, 3: 5}
SOURCES: tuple[str, ...] = ("audit", "incident", "alert")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
EVENT_ID = re.compile(r'\bevent="(audit|incident|alert)-([0-9]+)"')


@dataclass(frozen=True)
class Event:
    source: str  # one of SOURCES: the table it comes from
    row_id: int
    ts: float
    msgid: str
    severity: int  # syslog severity 0..7
    facility: int
    params: tuple[tuple[str, str], ...]
    text: str

    @property
    def event_id(self) -> str:
        return f"{self.source}-{self.row_id}"


def clean(value: Any) -> str:
    """Text with every control character (newlines included) written as \\xNN, and lone surrogates replaced."""
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def sd_value(value: Any) -> str:
    """An SD-PARAM value: cleaned, then '"', '\\' and ']' escaped (RFC 5424 §6.3.3)."""
    return "".join("\\" + c if c in '"\\]' else c for c in clean(value))


def timestamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _audit_msgid(action: str) -> str:
    if action.startswith("config."):
        return "apply"
    if action.startswith(("update.", "ids.rules.")):
        return "update"
    return "audit"


def from_audit(row: dict[str, Any]) -> Event:
    """An audit entry (appliance.queries.audit_after row): config applies and updates get their own MSGID."""
    action = str(row["action"])
    failed = action.endswith(("_failed", ".refused", ".auto_revert", ".rollback", ".rolled_back"))
    try:
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
        detail_text = json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except ValueError:
        detail_text = str(row["detail"])
    params = (("actor", str(row["actor"])), ("action", action), ("via", str(row["source"])),
              ("remote", str(row["remote"] or "")))  # fmt: skip
    return Event("audit", int(row["id"]), float(row["ts"]), _audit_msgid(action), 4 if failed else 6,
                 FACILITY_AUDIT, params, f"{action} by {row['actor']}: {detail_text}")  # fmt: skip


def _ids_severity(value: Any) -> int:
    return min(max(int(value), 1), 3)


def from_incident(row: dict[str, Any]) -> Event:
    """A new incident (ids.queries.incidents_after row): one message when it is opened."""
    sev = _ids_severity(row["severity"])
    params = (("sid", str(row["sid"])), ("ids_severity", str(sev)), ("src", str(row["src_ip"])),
              ("dst", str(row["dest_ip"])), ("category", str(row["category"])),
              ("first_seen", timestamp(float(row["first_seen"]))))  # fmt: skip
    return Event("incident", int(row["id"]), float(row["first_seen"]), "incident", IDS_SEVERITY[sev],
                 FACILITY_ALERT, params, f"incident opened: {row['signature']}")  # fmt: skip


def from_alert(row: dict[str, Any]) -> Event:
    """One IDS alert (ids.queries.alerts_after row)."""
    sev = _ids_severity(row["severity"])
    params = (("sid", str(row["sid"])), ("rev", str(row["rev"])), ("ids_severity", str(sev)),
              ("src", str(row["src_ip"])), ("sport", str(row["src_port"] or "")),
              ("dst", str(row["dest_ip"])), ("dport", str(row["dest_port"] or "")),
              ("proto", str(row["proto"])), ("category", str(row["category"])),
              ("incident", str(row["incident_id"] or "")))  # fmt: skip
    return Event("alert", int(row["id"]), float(row["ts"]), "alert", IDS_SEVERITY[sev], FACILITY_ALERT,
                 params, str(row["signature"]))  # fmt: skip


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: max(limit - 3, 0)].decode("utf-8", "ignore") + "..."


def format_line(event: Event, box_id: str) -> str:
    """The whole RFC 5424 message of one event, without the line end. `box_id` is checked by the config
    model (letters, digits, . _ -), so it is a valid HOSTNAME as it is."""
    pri = event.facility * 8 + event.severity
    params = [("box", box_id), ("event", event.event_id), *event.params]
    sd = "[" + SD_ID + "".join(f' {name}="{sd_value(value)}"' for name, value in params) + "]"
    head = f"<{pri}>1 {timestamp(event.ts)} {box_id} {APP_NAME} - {event.msgid} "
    room = MAX_LINE - len(head.encode()) - 1
    if len(sd.encode()) > room // 2:  # hostile, huge values: keep the ids, cut the rest
        params = [(n, _cut(clean(v), 128)) for n, v in params]
        sd = "[" + SD_ID + "".join(f' {name}="{sd_value(value)}"' for name, value in params) + "]"
    return head + sd + " " + _cut(clean(event.text), room - len(sd.encode()))


def parse_event_id(line: str) -> tuple[str, int] | None:
    """(source, row id) of a spooled line, or None (the spool writer reads back what it wrote)."""
    m = EVENT_ID.search(line)
    return (m.group(1), int(m.group(2))) if m else None
