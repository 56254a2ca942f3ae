"""decide_block: the auto-block policy, table-driven; and the responder's bookkeeping with a recording
firewall stand-in (the real nft path is covered by tests/integration/test_ids_lab.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import MamoriError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from ids.alerts import Alert, Endpoint
from ids.ingest import StoredAlert
from ids.response import AutoResponder, decide_block

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
                 proto="TCP")  # fmt: skip


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
    r = AutoResponder(ctx, cfg_with(), sets=sets)
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
