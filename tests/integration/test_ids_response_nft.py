"""The auto-responder against Mamori's real nftables table in a throw-away namespace: an internet attacker
is blocked (batched), an allowlisted address and the DNS upstream never are, an internal PC with a
high-severity C2 alert is quarantined when the policy says so, and an unblock undoes it (audited).

The work runs in a child process inside the namespace (libnftables talks to the namespace of the process),
which prints what it saw as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed"),
]


def _inside() -> None:
    """Runs in the namespace (see the test)."""
    import yaml

    from appliance.config.load import parse_config
    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context
    from firewall.sets import FirewallSets
    from firewall.subsystem import FirewallSubsystem
    from ids.alerts import Alert, Endpoint, FlowSeen
    from ids.ingest import StoredAlert
    from ids.response import AutoResponder, unblock

    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text())
    data["firewall"]["allowlist"] = ["198.51.100.20/32"]
    data["ids"]["auto_block"]["quarantine_internal_on_c2"] = True
    cfg = parse_config(yaml.safe_dump(data, allow_unicode=True)).model
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(config=Path(tmp) / "c.yaml", state_dir=Path(tmp))
        paths.ensure()
        db = Database(paths.db)
        db.migrate()
        ctx = Context(paths, db)
        fw = FirewallSubsystem(ctx)
        fw.apply(fw.render(cfg))

        def alert(src: str, zone: str, category: str = "Attempted Administrator Privilege Gain") -> Alert:
            # An established flow (the handshake completed): only such a flow may block its source.
            return Alert(1.0, 1990001, 1, "MAMORI test", category, 1, Endpoint(src, 1, zone, None),
                         Endpoint("203.0.113.2", 3389, "box", None), "TCP", app_proto="rdp",
                         flow=FlowSeen(4, 3, 391, None))  # fmt: skip

        sets = FirewallSets(ctx, cfg)
        AutoResponder(ctx, cfg, sets=sets)([
            StoredAlert(alert("198.51.100.66", "internet"), 1, True),
            StoredAlert(alert("198.51.100.67", "internet"), 2, True),
            StoredAlert(alert("198.51.100.20", "internet"), 3, True),
            StoredAlert(alert("198.51.100.53", "internet"), 4, True),
            StoredAlert(alert("192.168.10.20", "lan", "Malware Command and Control Activity Detected"), 5, True),
        ])  # fmt: skip
        before = {
            "blocked": [e.ip for e in sets.list_blocked()],
            "quarantined": [e.ip for e in sets.list_quarantined()],
        }
        with db.connection() as conn:
            links = sorted(tuple(r) for r in conn.execute("SELECT ip, incident_id FROM ids_blocks"))
        present = unblock(ctx, cfg, "198.51.100.66", actor="test")
        after = [e.ip for e in sets.list_blocked()]
        with db.connection() as conn:
            audit = [r[0] for r in conn.execute("SELECT action FROM audit")]
        fw.reset()
    print(json.dumps({"before": before, "links": links, "present": present, "after": after, "audit": audit}))


def test_responder_with_real_nft() -> None:
    ns = f"ids{os.getpid()}n"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        code = "import tests.integration.test_ids_response_nft as t; t._inside()"
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["before"] == {"blocked": ["198.51.100.66", "198.51.100.67"], "quarantined": ["192.168.10.20"]}
    assert out["links"] == [["192.168.10.20", 5], ["198.51.100.66", 1], ["198.51.100.67", 2]]
    assert out["present"] is True and out["after"] == ["198.51.100.67"]
    assert out["audit"] == ["ids.unblock"]
