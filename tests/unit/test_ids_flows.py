"""Flow analysis: lateral movement by distinct hosts, data leaving the clinical zone, devices online —
from flow records shaped like the real ones in tests/fixtures/eve (Suricata 7.0.10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.config.load import load_config
from ids.alerts import Resolver
from ids.explain import explain
from ids.flows import FlowAnalyzer

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"


@pytest.fixture(scope="module")
def cfg():
    return load_config(REPO / "examples" / "clinic.yaml").model


@pytest.fixture(scope="module")
def real_flow() -> dict:
    return next(
        json.loads(x) for x in FIXTURE.read_text().splitlines() if '"event_type":"flow"' in x and '"TCP"' in x
    )


def flow(base: dict, src: str, dst: str, dport: int, ts: str, sent: int = 100) -> dict:
    rec = json.loads(json.dumps(base))
    rec.update(src_ip=src, dest_ip=dst, dest_port=dport, timestamp=ts, proto="TCP")
    rec["flow"]["bytes_toserver"] = sent
    return rec


def t(seconds: int) -> str:
    return f"2026-11-26T01:{seconds // 60:02d}:{seconds % 60:02d}.000000+0000"


def test_lateral_movement_needs_distinct_hosts(cfg, real_flow) -> None:
    fa = FlowAnalyzer(cfg, Resolver(cfg))
    same = [flow(real_flow, "192.168.10.20", "192.168.10.30", 445, t(i)) for i in range(30)]
    assert fa.analyse(same, 0) == []  # many connections to one server is normal file sharing
    sweep = [flow(real_flow, "192.168.10.20", f"192.168.30.{i}", 445, t(100 + i)) for i in range(1, 12)]
    found = fa.analyse(sweep, 0)
    assert [a.sid for a in found] == [1990101] and found[0].src.name == "受付PC"
    assert "ランサムウェア" in explain(1990101, found[0].category, found[0].severity).meaning
    assert (
        fa.analyse([flow(real_flow, "192.168.10.20", "192.168.30.99", 445, t(200))], 0) == []
    )  # once per window


def test_exfiltration_threshold(cfg, real_flow) -> None:
    fa = FlowAnalyzer(cfg, Resolver(cfg))
    mb = 1024 * 1024
    chunks = [flow(real_flow, "192.168.10.10", "198.51.100.10", 443, t(i), sent=100 * mb) for i in range(4)]
    assert fa.analyse(chunks, 0) == []
    found = fa.analyse([flow(real_flow, "192.168.10.10", "198.51.100.10", 443, t(10), sent=150 * mb)], 0)
    assert [a.sid for a in found] == [1990102] and "550 MB" in found[0].signature
    guest = [flow(real_flow, "192.168.20.50", "198.51.100.10", 443, t(20), sent=900 * mb)]
    assert fa.analyse(guest, 0) == []  # patients' Wi-Fi is not the clinical zone


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda r: r.update(src_ip="192.168.30.40"), [1990103]),
        (lambda r: r.update(src_ip="not-an-ip"), []),
        (lambda r: r["flow"].update(bytes_toserver="a lot"), []),
        (lambda r: r.update(dest_port=True), []),
    ],
)
def test_hostile_or_odd_flows(cfg, real_flow, mutate, expect) -> None:
    rec = flow(real_flow, "192.168.10.10", "198.51.100.10", 443, t(1), sent=10)
    mutate(rec)
    assert [a.sid for a in FlowAnalyzer(cfg, Resolver(cfg)).analyse([rec], 0)] == expect
