"""Normalise a Suricata EVE alert into the few fields Mamori shows, stores and acts on.

Everything in an EVE record came from the network and is attacker-controlled: addresses are parsed as
addresses, ports as integers in range, strings are cut to a sane length. A record that is not a usable
alert raises AlertFormatError (the caller counts it; the raw event is already stored).
Each side is placed in a zone of the config (lan, guest, devices, vpn, mgmt), 'box' for the box's own
WAN address, or 'internet', and named from the inventory (cfg.hosts) when it is a known device.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from appliance.config.model import MamoriConfig
from appliance.config.references import zone_of_ip
from appliance.errors import MamoriError
from appliance.zones import zone_label
from ids.eve_reader import event_time


class AlertFormatError(MamoriError):
    code = "ids.alert_format"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int | None
    zone: str  # lan / guest / devices / vpn / mgmt / box / internet
    name: str | None  # inventory name (電子カルテ, 受付PC...) when known

    def label(self) -> str:
        """How staff see this side: the device name if known, else the address, with its zone."""
        who = self.name or self.ip
        return f"{who}（{zone_label(self.zone, '')}）"

    @property
    def external(self) -> bool:
        return self.zone == "internet"


@dataclass(frozen=True)
class FlowSeen:
    """What Suricata had seen of the alert's flow when it raised the alert (EVE `flow` and `tcp`): whether
    the source answered the other side decides if its address can be trusted (ids.response)."""

    pkts_toserver: int
    pkts_toclient: int
    bytes_toclient: int
    state: str | None  # tcp.state (or flow.state) when Suricata wrote one: "established", "closed"...


@dataclass(frozen=True)
class Alert:
    ts: float
    sid: int
    rev: int
    signature: str
    category: str
    severity: int
    src: Endpoint
    dst: Endpoint
    proto: str
    app_proto: str | None = None
    http_host: str | None = None
    http_url: str | None = None
    http_user_agent: str | None = None
    tls_sni: str | None = None
    dns_name: str | None = None
    flow: FlowSeen | None = None

    def detail(self) -> dict[str, Any]:
        """The app-layer details and zones, for storage as JSON (built by hand: asdict is slow)."""
        d: dict[str, Any] = {
            "src": {"ip": self.src.ip, "port": self.src.port, "zone": self.src.zone, "name": self.src.name},
            "dst": {"ip": self.dst.ip, "port": self.dst.port, "zone": self.dst.zone, "name": self.dst.name},
        }
        for key in ("app_proto", "http_host", "http_url", "http_user_agent", "tls_sni", "dns_name"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    return value[:limit]


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535 else None


def _int(value: Any, name: str, low: int = 0, high: int = 2**32 - 1) -> int:
    """An integer field within range (SQLite stores at most 64 bits; sids and revs are 32-bit in Suricata)."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise AlertFormatError(f"アラートの {name} が不正です", f"alert field {name} is not a valid integer")


class Resolver:
    """Zone and inventory name of an address, for one config (cached: alerts repeat addresses)."""

    def __init__(self, cfg: MamoriConfig, cache_size: int = 4096) -> None:
        self.cfg = cfg
        self.names = {h.ip: h.name for h in cfg.hosts if h.ip}
        self.box = {
            str(ipaddress.ip_interface(a).ip)
            for i in cfg.interfaces_in("wan")
            for a in (i.address, i.address6)
            if a and a != "dhcp"
        }
        self.cache_size = cache_size
        self._cache: dict[str, str] = {}
        self._lookups: dict[str, tuple[str, str, str | None] | None] = {}

    def zone(self, ip: str) -> str:
        zone = self._cache.get(ip)
        if zone is None:
            zone = zone_of_ip(self.cfg, ip) or ("box" if ip in self.box else "internet")
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[ip] = zone
        return zone

    def lookup(self, ip_value: Any) -> tuple[str, str, str | None] | None:
        """(normalised ip, zone, inventory name) of a raw EVE address, None if it is not an address.
        Cached by the raw text: flow analysis asks this for every flow record."""
        if not isinstance(ip_value, str) or len(ip_value) > 64:
            return None
        hit = self._lookups.get(ip_value)
        if hit is None and ip_value not in self._lookups:
            try:
                ip = str(ipaddress.ip_address(ip_value))
                hit = (ip, self.zone(ip), self.names.get(ip))
            except ValueError:
                hit = None
            if len(self._lookups) >= self.cache_size:
                self._lookups.clear()
            self._lookups[ip_value] = hit
        return hit

    def endpoint(self, ip_value: Any, port: Any) -> Endpoint:
        hit = self.lookup(ip_value)
        if hit is None:
            raise AlertFormatError("アラートのアドレスが不正です", "alert address is not an IP address")
        return Endpoint(hit[0], _port(port), hit[1], hit[2])


def normalise(record: dict[str, Any], resolver: Resolver, received: float | None = None) -> Alert:
    """An EVE alert record → Alert. Raises AlertFormatError if it is not a usable alert."""
    alert = record.get("alert")
    if record.get("event_type") != "alert" or not isinstance(alert, dict):
        raise AlertFormatError("アラートではない記録です", "not an alert record")
    ts = event_time(record)
    if ts is None:
        if received is None:
            raise AlertFormatError("アラートの時刻が不正です", "alert timestamp is invalid")
        ts = received
    http = record.get("http") if isinstance(record.get("http"), dict) else {}
    tls = record.get("tls") if isinstance(record.get("tls"), dict) else {}
    dns = record.get("dns") if isinstance(record.get("dns"), dict) else {}
    return Alert(
        ts=ts,
        sid=_int(alert.get("signature_id"), "signature_id"),
        rev=_int(alert.get("rev", 0), "rev"),
        signature=_text(alert.get("signature"), 300) or "",
        category=_text(alert.get("category"), 120) or "",
        severity=_int(alert.get("severity", 3), "severity", 1, 255),
        src=resolver.endpoint(record.get("src_ip"), record.get("src_port")),
        dst=resolver.endpoint(record.get("dest_ip"), record.get("dest_port")),
        proto=_text(record.get("proto"), 16) or "",
        app_proto=_text(record.get("app_proto"), 32),
        http_host=_text(http.get("hostname"), 253),
        http_url=_text(http.get("url"), 2000),
        http_user_agent=_text(http.get("http_user_agent"), 500),
        tls_sni=_text(tls.get("sni"), 253),
        dns_name=_dns_name(dns),
        flow=_flow_seen(record),
    )


def _flow_seen(record: dict[str, Any]) -> FlowSeen | None:
    flow, tcp = record.get("flow"), record.get("tcp")
    if not isinstance(flow, dict):
        return None
    state = tcp.get("state") if isinstance(tcp, dict) else None
    state = state if isinstance(state, str) else flow.get("state")

    def count(key: str) -> int:
        v = flow.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    return FlowSeen(count("pkts_toserver"), count("pkts_toclient"), count("bytes_toclient"),
                    _text(state, 16) if isinstance(state, str) else None)  # fmt: skip


def _dns_name(dns: dict[str, Any]) -> str | None:
    """EVE v2 puts the question in `query` (alerts) or `rrname` (dns events)."""
    query = dns.get("query")
    if isinstance(query, list) and query and isinstance(query[0], dict):
        return _text(query[0].get("rrname"), 253)
    return _text(dns.get("rrname"), 253)
