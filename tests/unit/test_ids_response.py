"""decide_block: the auto-block policy, table-driven; and the responder's bookkeeping with a recording
firewall stand-in (the real nft path is covered by tests/integration/test_ids_lab.py).

Spoofing (issue 18 item 4): alerts are normalised from the real Suricata EVE capture and from variants of
its lines (a UDP packet, a SYN answered by the address's real owner with a RST): only a flow whose TCP
handshake completed may block its source; VPN peer endpoints (asked from the VPN area), the services'
hosts and more than max_blocks blocks in ten minutes are held, and the incident says why in Japanese."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import MamoriError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from ids.alerts import Alert, Endpoint, FlowSeen, Resolver, normalise
from ids.incidents import list_incidents, record_alerts
from ids.ingest import StoredAlert
from ids.response import AutoResponder, decide_block

ESTABLISHED = FlowSeen(pkts_toserver=4, pkts_toclient=3, bytes_toclient=391, state=None)

REPO = Path(__file__).resolve().parents[2]


def cfg_with(**ids_auto_block):
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text())
    data["ids"]["auto_block"].update(ids_auto_block)
    data["firewall"]["allowlist"] = ["198.51.100.20/32"]
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


def alert(
    src: str, zone: str, severity: int = 1, category: str = "Attempted Administrator Privilege Gain"
) -> Alert:
    return Alert(ts=1.0, sid=1990001, rev=1, signature="MAMORI RDP", category=category, severity=severity,
                 src=Endpoint(src, 5555, zone, None), dst=Endpoint("203.0.113.2", 3389, "box", None),
                 proto="TCP", app_proto="rdp", flow=ESTABLISHED)  # fmt: skip


@pytest.mark.parametrize(
    ("a", "policy", "action", "why_has"),
    [
        (alert("198.51.100.66", "internet"), {}, "block", "external"),
        (alert("198.51.100.66", "internet", severity=2), {}, "block", "external"),
        (alert("198.51.100.66", "internet", severity=3), {}, "none", "below threshold"),
        (alert("198.51.100.66", "internet", severity=2), {"min_severity": 1}, "none", "below threshold"),
        (alert("198.51.100.66", "internet"), {"enabled": False}, "none", "disabled"),
        (alert("198.51.100.20", "internet"), {}, "none", "allowlisted"),
        (alert("203.0.113.1", "internet"), {}, "none", "WAN network"),
        (alert("203.0.113.77", "internet"), {}, "none", "WAN network"),
        (alert("198.51.100.53", "internet"), {}, "none", "DNS upstream"),
        (alert("127.0.0.1", "internet"), {}, "none", "special"),
        (alert("192.168.10.20", "lan"), {}, "none", "not external"),
        (alert("203.0.113.2", "box"), {}, "none", "not external"),
        (alert("192.168.10.20", "lan", category="Malware Command and Control Activity Detected"),
         {"quarantine_internal_on_c2": True}, "quarantine", "C2"),
        (alert("192.168.10.20", "lan", severity=2, category="Malware Command and Control Activity Detected"),
         {"quarantine_internal_on_c2": True}, "none", "not external"),
        (alert("192.168.10.20", "lan", category="Malware Command and Control Activity Detected"),
         {}, "none", "not external"),
    ],
)  # fmt: skip
def test_decide_block(a: Alert, policy: dict, action: str, why_has: str) -> None:
    d = decide_block(a, cfg_with(**policy))
    assert d.action == action and why_has in d.why
    if action != "none":
        assert d.ip == a.src.ip and d.timeout_s == 24 * 3600


class RecordingSets:
    """Stands in for firewall.sets.FirewallSets where no nft table exists (unit tests run without root)."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.calls: list[tuple] = []
        self.refuse = refuse or set()

    def block(self, ip, timeout_s, reason, source):
        if ip in self.refuse:
            raise MamoriError("拒否", "refused")
        self.calls.append(("block", ip, timeout_s, reason, source))
        return ip


def test_responder_blocks_once_per_address_and_links_incident(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    ctx = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), db)
    sets = RecordingSets(refuse={"198.51.100.99"})
    r = AutoResponder(ctx, cfg_with(), sets=sets, vpn_endpoints=set)
    a = alert("198.51.100.66", "internet")
    r(
        [
            StoredAlert(a, 7, True),
            StoredAlert(replace(a, ts=2.0), 7, False),
            StoredAlert(alert("192.168.10.20", "lan"), 8, True),
        ]
    )
    r([StoredAlert(alert("198.51.100.99", "internet"), 9, True)])
    assert [c[:3] for c in sets.calls] == [("block", "198.51.100.66", 86400)]
    assert "incident 7" in sets.calls[0][3] and sets.calls[0][4] == "ids"
    with db.connection() as conn:
        assert [tuple(r) for r in conn.execute("SELECT ip, incident_id FROM ids_blocks")] == [
            ("198.51.100.66", 7)
        ]
        counters = dict(conn.execute("SELECT name, value FROM ids_counters").fetchall())
    assert counters == {"auto_block": 1, "auto_block_refused": 1}


# -- spoofed sources: the real EVE capture and variants of its lines --------------------------------------

EVE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"
DOCTOR_HOME = "198.51.100.40"


def eve_alerts() -> dict[int, dict]:
    """The real alert records of the capture by sid (the first of each)."""
    out: dict[int, dict] = {}
    for line in EVE.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event_type") == "alert":
            out.setdefault(rec["alert"]["signature_id"], rec)
    return out


def variant(rec: dict, **changes) -> dict:
    """A copy of a real EVE record with top-level fields and `flow` counters replaced."""
    rec = copy.deepcopy(rec)
    for key, value in changes.items():
        if key in ("pkts_toserver", "pkts_toclient", "bytes_toclient"):
            rec["flow"][key] = value
        elif value is None:
            rec.pop(key, None)
        else:
            rec[key] = value
    return rec


def normalised(rec: dict, cfg) -> Alert:
    return normalise(rec, Resolver(cfg))


def _spoofed() -> list[tuple[str, dict, str]]:
    a = eve_alerts()
    http = a[2009358]  # Nmap NSE user agent over an established HTTP connection (4 packets each way)
    return [
        ("real RDP SYN (no answer)", a[1990001], "none"),
        ("real port-scan SYN", a[1990004], "none"),
        ("real established HTTP", http, "block"),
        (
            "one forged UDP packet",
            variant(a[2047719], src_ip=DOCTOR_HOME, src_port=53, dest_ip="203.0.113.2", dest_port=5060),
            "none",
        ),
        ("the HTTP flow as UDP", variant(http, proto="UDP"), "none"),
        (
            "SYN answered by the real owner's RST",
            variant(a[1990001], pkts_toserver=2, pkts_toclient=1, bytes_toclient=60),
            "none",
        ),
        ("app_proto failed", variant(http, app_proto="failed"), "none"),
        (
            "tcp state established",
            {**variant(a[1990001], pkts_toclient=1, bytes_toclient=60), "tcp": {"state": "established"}},
            "block",
        ),
    ]


@pytest.mark.parametrize(("name", "rec", "action"), _spoofed(), ids=[n for n, _, _ in _spoofed()])
def test_only_a_completed_handshake_proves_the_source(name: str, rec: dict, action: str) -> None:
    cfg = cfg_with()
    d = decide_block(normalised(rec, cfg), cfg)
    assert d.action == action, d.why
    if action == "none":
        assert d.held == "unproven" and "not proven" in d.why


def _ctx(tmp_path: Path) -> Context:
    db = Database(tmp_path / "m.db")
    db.migrate()
    return Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), db)


def _stored(ctx: Context, alerts: list[Alert]) -> list[StoredAlert]:
    """The alerts recorded as incidents, as AlertIngest hands them to the responders."""
    with ctx.db.transaction() as conn:
        results = record_alerts(conn, [(a, None) for a in alerts], 3600)
    return [StoredAlert(a, iid, new) for a, (iid, new) in zip(alerts, results, strict=True)]


def _notes(ctx: Context, incident_id: int) -> str:
    with ctx.db.connection() as conn:
        return conn.execute("SELECT notes FROM ids_incidents WHERE id = ?", (incident_id,)).fetchone()[0]


def test_a_forged_udp_packet_naming_a_doctor_blocks_nobody_and_the_clinic_reads_why(tmp_path: Path) -> None:
    ctx, cfg, sets = _ctx(tmp_path), cfg_with(min_severity=2), RecordingSets()
    forged = normalised(variant(eve_alerts()[2047719], src_ip=DOCTOR_HOME, dest_ip="203.0.113.2"), cfg)
    assert forged.severity == 2 and forged.src.external
    responder = AutoResponder(ctx, cfg, sets=sets, vpn_endpoints=set)
    (item,) = _stored(ctx, [forged])
    responder([item, replace(item, new_incident=False)])
    assert sets.calls == []
    notes = _notes(ctx, item.incident_id)
    assert notes.count("自動遮断はしませんでした") == 1 and "偽装できます" in notes
    with ctx.db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM ids_blocks").fetchone()[0] == 0
        counters = dict(conn.execute("SELECT name, value FROM ids_counters").fetchall())
    assert counters["auto_block_held_unproven"] == 2


def test_vpn_peer_endpoints_from_the_vpn_area_are_never_blocked(tmp_path: Path) -> None:
    from vpn.monitor import LogEntry, record

    ctx, cfg, sets = _ctx(tmp_path), cfg_with(), RecordingSets()
    record(ctx, [LogEntry(time.time() - 600, "yamada", 1, "connect", f"{DOCTOR_HOME}:51820")])
    # Established, so provable: the doctor's home really sent it (an infected home PC, or a NAT shared
    # with an attacker). Cutting it would cut the doctor's VPN: the clinic decides, not the responder.
    rec = variant(eve_alerts()[2009358], src_ip=DOCTOR_HOME)
    responder = AutoResponder(ctx, cfg, sets=sets)  # the real VPN query (vpn.endpoints.peer_endpoints)
    (item,) = _stored(ctx, [normalised(rec, cfg)])
    responder([item])
    assert sets.calls == []
    assert "VPN 利用者" in _notes(ctx, item.incident_id)
    other = _stored(ctx, [normalised(eve_alerts()[2009358], cfg)])
    responder(other)
    assert [c[1] for c in sets.calls] == ["198.51.100.66"]


def test_service_hosts_are_never_blocked(tmp_path: Path) -> None:
    from ids.response import ServiceHosts

    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text())
    data["ntp"] = {"servers": ["198.51.100.123", "ntp.example.jp"]}
    data["notifications"]["webhook"] = {"url": "https://198.51.100.80:8443/hook"}
    data["notifications"]["syslog"] = {"host": "syslog.example.jp"}
    cfg = parse_config(yaml.safe_dump(data, allow_unicode=True)).model
    names = {"ntp.example.jp": {"198.51.100.124"}, "syslog.example.jp": {"2001:db8::514"}}
    services = ServiceHosts(cfg, resolve=lambda n: names[n])
    services.refresh(wait=True)
    ctx, sets = _ctx(tmp_path), RecordingSets()
    responder = AutoResponder(ctx, cfg, sets=sets, vpn_endpoints=set, services=services)
    http = eve_alerts()[2009358]
    hosts = ["198.51.100.123", "198.51.100.124", "198.51.100.80", "2001:db8::514"]
    stored = _stored(ctx, [normalised(variant(http, src_ip=ip), cfg) for ip in hosts])
    responder(stored)
    assert sets.calls == []
    assert "時刻合わせ（NTP）" in _notes(ctx, stored[1].incident_id)
    assert "syslog" in _notes(ctx, stored[3].incident_id)
    responder(_stored(ctx, [normalised(http, cfg)]))
    assert [c[1] for c in sets.calls] == ["198.51.100.66"]


def test_auto_blocks_are_rate_limited_and_the_clinic_is_told_once(tmp_path: Path) -> None:
    ctx, cfg, sets = _ctx(tmp_path), cfg_with(), RecordingSets()
    responder = AutoResponder(ctx, cfg, sets=sets, vpn_endpoints=set, max_blocks=3)
    http = eve_alerts()[2009358]
    first = _stored(ctx, [normalised(variant(http, src_ip=f"198.51.100.{n}"), cfg) for n in range(100, 105)])
    responder(first)
    later = _stored(ctx, [normalised(variant(http, src_ip=f"198.51.100.{n}"), cfg) for n in range(105, 107)])
    responder(later)
    assert [c[1] for c in sets.calls] == ["198.51.100.100", "198.51.100.101", "198.51.100.102"]
    for item in first[3:] + later:
        assert "上限（3件）" in _notes(ctx, item.incident_id)
    paused = [i for i in list_incidents(ctx.db) if i.sid == 1990104]
    assert len(paused) == 1 and paused[0].severity == 1  # notified like any 高 incident, once per window
    assert paused[0].explanation.title.startswith("自動遮断を一時的に止めました")
