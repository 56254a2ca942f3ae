"""One record of what is blocked: the firewall's. A manual block made through the firewall area's API (the
path of `mamori fw block`) shows on the web UI's dashboard and firewall page next to an automatic block of
the IDS, which still links to its incident. Real nftables table in a throw-away namespace, real web app.

The work runs in a child process inside the namespace (libnftables talks to the namespace of the process),
which prints what the pages showed as JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANUAL, ATTACKER = "198.51.100.70", "198.51.100.66"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed"),
]


def _row(page: str, ip: str) -> str:
    """The table row (firewall page) or list item (dashboard) that names `ip`."""
    m = re.search(r"<(tr|li)>(?:(?!</\1>).)*<code>" + re.escape(ip) + r"</code>.*?</\1>", page, re.S)
    return m.group(0) if m else ""


def _inside() -> None:
    """Runs in the namespace (see the test)."""
    from appliance.config.load import parse_config
    from firewall.sets import FirewallSets
    from firewall.subsystem import FirewallSubsystem
    from ids.alerts import Alert, Endpoint, FlowSeen
    from ids.ingest import StoredAlert
    from ids.response import AutoResponder
    from tests.webui_fixtures import EXAMPLE, make_box

    cfg = parse_config(EXAMPLE.read_text()).model
    with tempfile.TemporaryDirectory() as tmp:
        box = make_box(Path(tmp))
        box.add("admin", "admin")
        box.ctx.paths.ensure()
        box.ctx.db.migrate()
        fw = FirewallSubsystem(box.ctx)
        fw.apply(fw.render(cfg))
        sets = FirewallSets(box.ctx, cfg)
        sets.block(MANUAL, 3600, "manual test", "cli")  # what `mamori fw block` does
        alert = Alert(1.0, 1990001, 1, "MAMORI test", "Attempted Administrator Privilege Gain", 1,
                      Endpoint(ATTACKER, 1, "internet", None), Endpoint("203.0.113.2", 3389, "box", None), "TCP",
                      app_proto="rdp", flow=FlowSeen(4, 3, 391, None))  # fmt: skip
        AutoResponder(box.ctx, cfg, sets=sets, vpn_endpoints=set)([StoredAlert(alert, 7, True)])
        live = sorted(e.ip for e in sets.list_blocked())
        client = box.client()
        box.login(client, "admin")
        dashboard = client.get("/").get_data(as_text=True)
        firewall = client.get("/firewall/").get_data(as_text=True)
        fw.reset()
    print(json.dumps({
        "live": live,
        "dashboard": {ip: _row(dashboard, ip) for ip in (MANUAL, ATTACKER)},
        "firewall": {ip: _row(firewall, ip) for ip in (MANUAL, ATTACKER)},
    }))  # fmt: skip


def test_a_manual_firewall_block_shows_in_the_web_ui_and_an_ids_block_keeps_its_incident() -> None:
    ns = f"blk{os.getpid()}n"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        code = "import tests.integration.test_blocks_one_record as t; t._inside()"
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["live"] == [ATTACKER, MANUAL]
    dash, page = out["dashboard"], out["firewall"]
    assert "手動で遮断" in dash[MANUAL] and "まで" in dash[MANUAL]
    assert "自動で遮断" in dash[ATTACKER]
    assert "手動で遮断" in page[MANUAL] and "/alerts/" not in page[MANUAL]
    assert "自動で遮断" in page[ATTACKER] and 'href="/alerts/7"' in page[ATTACKER]
