"""Alerts from real Suricata 7.0.10 EVE output (tests/fixtures/eve, made by capture.py) → normalised,
grouped into incidents and explained in Japanese; hostile records are refused, not crashed on."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from appliance.config.load import load_config
from appliance.storage import Database
from ids.alerts import AlertFormatError, Resolver, normalise
from ids.eve_reader import EveReader, counters
from ids.incidents import ACKNOWLEDGED, OPEN, RESOLVED, IncidentError, list_incidents, record_alert, set_state
from ids.ingest import AlertIngest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"


@pytest.fixture(scope="module")
def cfg():
    return load_config(REPO / "examples" / "clinic.yaml").model


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def alert_for(records: list[dict], sid: int) -> dict:
    return next(r for r in records if r["event_type"] == "alert" and r["alert"]["signature_id"] == sid)


@pytest.mark.parametrize(
    ("sid", "src_zone", "dst_zone", "dst_name", "field", "value"),
    [
        (1990001, "internet", "box", None, "proto", "TCP"),
        (2009358, "internet", "lan", "電子カルテ", "http_user_agent",
         "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"),
        (2009358, "internet", "lan", "電子カルテ", "http_url", "/index.html?patient=1"),
        (2025108, "lan", "internet", None, "tls_sni", "login.clinic-portal.gq"),
        (2047719, "lan", "internet", None, "dns_name", "update.iplogger.com"),
        (1990007, "devices", "internet", None, "proto", "ICMP"),
    ],
)  # fmt: skip
def test_normalise_real_alerts(cfg, records, sid, src_zone, dst_zone, dst_name, field, value) -> None:
    a = normalise(alert_for(records, sid), Resolver(cfg))
    assert a.sid == sid and a.rev >= 1 and a.signature
    assert a.src.zone == src_zone and a.dst.zone == dst_zone
    assert a.dst.name == dst_name
    assert getattr(a, field) == value
    assert a.ts > 1_700_000_000


def test_device_side_is_named_from_inventory(cfg, records) -> None:
    a = normalise(alert_for(records, 1990007), Resolver(cfg))
    assert a.src.name == "X線装置"
    assert a.src.label() == "X線装置（医療機器）"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.pop("alert"),
        lambda r: r["alert"].update(signature_id="2009358"),
        lambda r: r.update(src_ip="999.1.1.1"),
        lambda r: r.update(dest_ip=None),
        lambda r: r.update(timestamp="yesterday"),
        lambda r: r["alert"].update(severity=True),
    ],
)
def test_hostile_alerts_are_refused(cfg, records, mutate) -> None:
    rec = json.loads(json.dumps(alert_for(records, 2009358)))
    mutate(rec)
    with pytest.raises(AlertFormatError):
        normalise(rec, Resolver(cfg))


def test_long_strings_are_cut(cfg, records) -> None:
    rec = json.loads(json.dumps(alert_for(records, 2009358)))
    rec["http"]["http_user_agent"] = "A" * 100_000
    rec["src_port"] = 70000
    a = normalise(rec, Resolver(cfg))
    assert len(a.http_user_agent) == 500 and a.src.port is None


def test_incidents_group_repeats_within_window(tmp_path, cfg, records) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    base = normalise(alert_for(records, 1990001), Resolver(cfg))
    from dataclasses import replace

    with db.transaction() as conn:
        ids = [
            record_alert(conn, replace(base, ts=base.ts + dt), window_s=3600)[0] for dt in (0, 10, 3000, 7000)
        ]
        other = record_alert(conn, replace(base, sid=1990004), window_s=3600)[0]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert other not in ids
    inc = next(i for i in list_incidents(db) if i.id == ids[0])
    assert inc.count == 3 and inc.last_seen - inc.first_seen == 3000 and inc.state == OPEN
    assert "リモートデスクトップ" in inc.explanation.title and inc.explanation.importance == "高"


def test_incident_state_and_notes_are_audited(tmp_path, cfg, records) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    with db.transaction() as conn:
        iid, new = record_alert(conn, normalise(alert_for(records, 1990001), Resolver(cfg)), 3600)
    assert new
    inc = set_state(db, iid, "acknowledged", actor="受付", note="保守業者に電話しました", now=0)
    assert inc.state == ACKNOWLEDGED and "保守業者に電話しました" in inc.notes
    inc = set_state(db, iid, RESOLVED, actor="vendor-a", note="遮断を確認")
    assert inc.state == RESOLVED and inc.notes.count("\n") == 1
    with pytest.raises(IncidentError):
        set_state(db, iid, "closed", actor="x")
    with db.connection() as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit")]
    assert actions.count("ids.incident.state") == 2
    with db.transaction() as conn:  # a resolved incident is not reopened by a repeat
        iid2, new2 = record_alert(conn, normalise(alert_for(records, 1990001), Resolver(cfg)), 3600)
    assert new2 and iid2 != iid


def test_fixture_through_reader_into_incidents(tmp_path, cfg, records) -> None:
    """The whole real EVE file, through the reader: every alert stored once and in an incident."""
    db = Database(tmp_path / "m.db")
    db.migrate()
    seen: list = []
    ingest = AlertIngest(cfg, responders=[seen.extend])
    reader = EveReader(db, FIXTURE, sink=ingest.sink, on_commit=ingest.on_commit, batch_lines=7)
    assert reader.poll() == len(records)
    n_alerts = sum(r["event_type"] == "alert" for r in records)
    n_found = 1  # the X線装置's ping to the internet, found again in its real flow record (sid 1990103)
    with db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM ids_alerts WHERE incident_id IS NOT NULL").fetchone()[
            0
        ] == (n_alerts + n_found)
    assert len(seen) == n_alerts + n_found and counters(db)["alerts"] == n_alerts + n_found
    flow_inc = [i for i in list_incidents(db) if i.sid == 1990103]
    assert len(flow_inc) == 1 and flow_inc[0].src_ip == "192.168.30.40"
    for inc in list_incidents(db):
        ex = inc.explanation
        assert ex.title and ex.action and ex.importance in "高中低"
        assert not ex.title.isascii(), f"English title leaked for sid {inc.sid}"


HOSTILE_VALUES = [None, True, -1, 2**70, 1e308, "", "x" * 5000, "\u202e\u0000", [], [1, [2]], {}, {"a": {"b": 1}},
                  "999.999.1.1", "::ffff:1.2.3.4", "0001-01-01T00:00:00", "9999-12-31T23:59:59"]  # fmt: skip


def test_hostile_alert_fields_never_break_a_batch(tmp_path, cfg, records) -> None:
    """Fuzz (seeded, bounded): every field of real alerts replaced by hostile values; the batch must store,
    count the unusable ones and never raise (a raise would stall ingestion on the same batch forever)."""
    import random

    rng = random.Random(4)
    alerts = [r for r in records if r["event_type"] == "alert"]
    lines = []
    for i in range(400):
        rec = json.loads(json.dumps(alerts[i % len(alerts)]))
        for _ in range(rng.randint(1, 4)):
            target = (
                rec if rng.random() < 0.5 else rec["alert"] if isinstance(rec.get("alert"), dict) else rec
            )
            target = target or rec
            key = rng.choice(sorted(target))
            target[key] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        rec["event_type"] = "alert"
        lines.append(json.dumps(rec))
    eve = tmp_path / "eve.json"
    eve.write_text("\n".join(lines) + "\n")
    db = Database(tmp_path / "m.db")
    db.migrate()
    ingest = AlertIngest(cfg)
    assert EveReader(db, eve, sink=ingest.sink, on_commit=ingest.on_commit, batch_lines=50).poll() == 400
    c = counters(db)
    assert c["alerts"] + c.get("alert_malformed", 0) == 400 and c.get("alert_malformed", 0) > 0


def test_hostile_flow_and_stats_records_never_break_a_batch(tmp_path, cfg, records) -> None:
    import random

    rng = random.Random(7)
    base = [r for r in records if r["event_type"] in ("flow", "stats")]
    lines = []
    for i in range(600):
        rec = json.loads(json.dumps(base[i % len(base)]))
        rec["src_ip"], rec["dest_ip"] = rng.choice([("192.168.10.20", "192.168.30.5"), ("192.168.10.10", "198.51.100.9"),
                                                    ("192.168.30.40", "198.51.100.9")])  # fmt: skip
        for _ in range(rng.randint(1, 4)):
            inner = [v for v in rec.values() if isinstance(v, dict) and v]
            target = rng.choice([rec, *inner])
            target[rng.choice(sorted(target))] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        rec["event_type"] = base[i % len(base)]["event_type"]
        lines.append(json.dumps(rec))
    eve = tmp_path / "eve.json"
    eve.write_text("\n".join(lines) + "\n")
    db = Database(tmp_path / "m.db")
    db.migrate()
    ingest = AlertIngest(cfg)
    reader = EveReader(db, eve, sink=ingest.sink, on_commit=ingest.on_commit, batch_lines=50,
                       skip_store=frozenset({"flow", "stats"}))  # fmt: skip
    assert reader.poll() == 600
    assert counters(db)["events_not_stored"] == 600
