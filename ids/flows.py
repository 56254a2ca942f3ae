"""Beyond signatures: incidents found in Suricata's flow records (who talked to whom, how much).

- Lateral movement: one internal host opening RDP/SMB (3389, 445, 139) to `ids.lateral_hosts` or more
  distinct internal hosts within 5 minutes (sid 1990101).
- Possible data theft: one host of the clinical zones (lan, mgmt) sending more than `ids.exfil_mb` MB to
  the internet within an hour (sid 1990102).
- A devices-zone host reaching the internet at all (sid 1990103).
Findings are turned into synthetic alerts (same Alert type, signature starting "MAMORI FLOW") so they
become incidents, with Japanese text from ids.mamori_rules, exactly like signature alerts.
State is in memory and bounded (MAX_TRACKED sources); it restarts empty with the daemon, which at worst
delays a finding by one window. Flow records are attacker-influenced: every field is checked.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from appliance.config.model import MamoriConfig
from ids.alerts import Alert, AlertFormatError, Resolver
from ids.eve_reader import event_time

log = logging.getLogger(__name__)

LATERAL_PORTS = frozenset({3389, 445, 139})
LATERAL_WINDOW = 300.0
EXFIL_WINDOW = 3600.0
MAX_TRACKED = 5000
CLINICAL = frozenset({"lan", "mgmt"})
INTERNAL = frozenset({"lan", "guest", "devices", "vpn", "mgmt"})


@dataclass
class _Window:
    events: deque = field(default_factory=deque)  # (ts, value)
    fired_at: float = float("-inf")
    total: int = 0  # running sum of the values in `events` (exfiltration bytes)
    distinct: dict = field(default_factory=dict)  # value -> how many times it is in `events` (lateral)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class FlowAnalyzer:
    def __init__(self, cfg: MamoriConfig, resolver: Resolver) -> None:
        self.resolver = resolver
        self.lateral_hosts = cfg.ids.lateral_hosts
        self.exfil_bytes = cfg.ids.exfil_mb * 1024 * 1024
        self._lateral: dict[str, _Window] = {}
        self._exfil: dict[str, _Window] = {}
        self._devices: dict[tuple[str, str], float] = {}
        self.errors = 0

    def analyse(self, records: list[dict[str, Any]], received: float) -> list[Alert]:
        found: list[Alert] = []
        for rec in records:
            if rec.get("event_type") != "flow":
                continue
            try:
                alert = self._one(rec, received)
            except AlertFormatError:
                continue  # a flow without usable addresses: nothing to say about it
            except Exception:  # a bug meeting odd input must not stall ingestion; logged with its trace
                self.errors += 1
                log.exception("flow record could not be analysed")
                continue
            if alert is not None:
                found.append(alert)
        return found

    def _one(self, rec: dict[str, Any], received: float) -> Alert | None:
        # Zones first, from the cached lookup: most flows concern nobody and must cost next to nothing.
        s, d = self.resolver.lookup(rec.get("src_ip")), self.resolver.lookup(rec.get("dest_ip"))
        if s is None or d is None:
            return None
        szone, dzone = s[1], d[1]
        lateral = szone in INTERNAL and dzone in INTERNAL
        dport = rec.get("dest_port")
        if lateral and (
            not isinstance(dport, int) or dport not in LATERAL_PORTS or rec.get("proto") != "TCP"
        ):
            return None
        if not lateral and not (dzone == "internet" and (szone in CLINICAL or szone == "devices")):
            return None
        src = self.resolver.endpoint(rec.get("src_ip"), rec.get("src_port"))
        dst = self.resolver.endpoint(rec.get("dest_ip"), rec.get("dest_port"))
        ts = event_time(rec) or received
        proto = str(rec.get("proto", ""))[:16]
        if lateral:
            return self._lateral_check(src, dst, ts, proto)
        if szone in CLINICAL:
            flow = rec.get("flow") if isinstance(rec.get("flow"), dict) else {}
            return self._exfil_check(src, dst, ts, proto, _int(flow.get("bytes_toserver")))
        if szone == "devices":
            key = (src.ip, dst.ip)
            if ts - self._devices.get(key, float("-inf")) < EXFIL_WINDOW:
                return None
            self._bound(self._devices)
            self._devices[key] = ts
            return self._alert(1990103, "MAMORI FLOW medical device talking to the internet",
                               "Potential Corporate Privacy Violation", 2, src, dst, ts, proto)  # fmt: skip
        return None

    def _lateral_check(self, src, dst, ts: float, proto: str) -> Alert | None:
        w = self._window(self._lateral, src.ip)
        w.events.append((ts, dst.ip))
        w.distinct[dst.ip] = w.distinct.get(dst.ip, 0) + 1
        while w.events and w.events[0][0] < ts - LATERAL_WINDOW:
            old = w.events.popleft()[1]
            w.distinct[old] -= 1
            if not w.distinct[old]:
                del w.distinct[old]
        hosts = len(w.distinct)
        if hosts < self.lateral_hosts or ts - w.fired_at < LATERAL_WINDOW:
            return None
        w.fired_at = ts
        return self._alert(1990101, f"MAMORI FLOW {hosts} hosts reached on RDP/SMB in 5 minutes",
                           "Misc Attack", 1, src, dst, ts, proto)  # fmt: skip

    def _exfil_check(self, src, dst, ts: float, proto: str, sent: int) -> Alert | None:
        if not sent:
            return None
        w = self._window(self._exfil, src.ip)
        w.events.append((ts, sent))
        w.total += sent
        while w.events and w.events[0][0] < ts - EXFIL_WINDOW:
            w.total -= w.events.popleft()[1]
        total = w.total
        if total < self.exfil_bytes or ts - w.fired_at < EXFIL_WINDOW:
            return None
        w.fired_at = ts
        return self._alert(1990102, f"MAMORI FLOW {total // (1024 * 1024)} MB sent to the internet in an hour",
                           "Potential Corporate Privacy Violation", 1, src, dst, ts, proto)  # fmt: skip

    def _window(self, table: dict[str, _Window], key: str) -> _Window:
        w = table.get(key)
        if w is None:
            self._bound(table)
            w = table[key] = _Window()
        return w

    @staticmethod
    def _bound(table: dict) -> None:
        if len(table) >= MAX_TRACKED:
            log.warning("flow analysis tracks %d sources; forgetting the oldest half", len(table))
            for key in list(table)[: len(table) // 2]:
                del table[key]

    @staticmethod
    def _alert(sid, signature, category, severity, src, dst, ts, proto) -> Alert:
        return Alert(ts=ts, sid=sid, rev=1, signature=signature, category=category, severity=severity,
                     src=src, dst=dst, proto=proto)  # fmt: skip
