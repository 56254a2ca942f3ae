"""The vendor's work report from a real maintenance window in the lab: a real WireGuard tunnel, the MFA
portal, the real daemon and firewall. The vendor opens two TCP connections to the 電子カルテ host's
maintenance port that move 200 KB each, and tries a host he may not reach. The report (from the box's own
connection log: conntrack events and the firewall's refused-connection log, with the IDS off) lists the
two with their bytes and the refused attempt; a config apply during the window adds no session record."""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, make_box
from lab.topology import Lab
from lab.waiting import wait_for
from tests.integration.test_vpn_gate import EMR, PASSWORD, RECEPTION, fresh_code, onboard, portal
from vpn.wg import WgInterface

pytestmark = pytest.mark.integration

PAYLOAD = 200_000
SINK = """
import socket, sys, threading
def take(c):
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.sendall(str(n).encode()); c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept(); threading.Thread(target=take, args=(c,), daemon=True).start()
"""
SEND = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"m" * int(sys.argv[3])); s.shutdown(socket.SHUT_WR)
print(s.recv(64).decode()); s.close()
"""


@pytest.fixture()
def clinic(tmp_path):
    lab = Lab(f"vr{os.getpid()}")
    box = None
    try:
        lab.up()
        data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        for user in data["vpn"]["users"]:
            user.pop("hours", None)  # access hours are unit-tested; here the test must pass at any time
        data.setdefault("ids", {})["enabled"] = False  # the record must not depend on the IDS
        box = make_box(lab, tmp_path / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        box.mamori("config", "apply", "-m", "作業報告の試験")
        lab.spawn("emr", [sys.executable, "-c", SINK, "22"])
        lab.spawn("reception", [sys.executable, "-c", SINK, "443"])
        assert wait_for(lambda: "0.0.0.0:22" in lab.run("emr", ["ss", "-Hltn"]).stdout, 5)
        secret = onboard(box, "server", "vendor-a", "laptop", f"wgv{lab.prefix[2:]}", tmp_path)
        box.start_daemon()
        assert wait_for(lambda: portal(lab, "server", "get")[0] == 200, 20), (
            "portal not reachable in the tunnel"
        )
        yield lab, box, secret
    finally:
        try:
            if box is not None:
                box.stop_daemon()
            for host, name, run_dir in (
                ("box", lab.wg_name(), tmp_path / "state" / "run"),
                ("server", f"wgv{lab.prefix[2:]}", tmp_path),
            ):
                WgInterface(name, run_dir=run_dir, netns=lab.ns(host)).delete()
        finally:
            lab.down()


def connects(box) -> int:
    log = box.mamori("vpn", "sessions", "vendor-a", "--log").stdout
    return len(re.findall(r"vendor-a\s+connect\s", log))


def test_report_lists_what_the_vendor_reached_and_was_refused(clinic, tmp_path):
    lab, box, secret = clinic
    code = fresh_code(secret)
    # long enough for two transfers, a refused try and a config apply on a slow, shared machine
    box.mamori("vpn", "windows", "--approve", "vendor-a", "--hours", "0.025", "--reason", "電子カルテ更新",
               "--target", "電子カルテ")  # fmt: skip
    status, body = portal(lab, "server", "login", PASSWORD, code)
    assert status == 200 and "接続中です" in body, body
    for _ in range(2):
        res = lab.run("server", [sys.executable, "-c", SEND, EMR, "22", str(PAYLOAD)], timeout=30)
        assert res.stdout.strip() == str(PAYLOAD)
    # The vendor edits his own client to send another host's traffic into the tunnel (his config routes
    # only his access list there): the box refuses it, and records that he tried.
    wg_if = f"wgv{lab.prefix[2:]}"
    peer, ips = lab.run("server", ["wg", "show", wg_if, "allowed-ips"]).stdout.split("\t", 1)
    wider = ",".join([*ips.split(), f"{RECEPTION}/32"])
    lab.run("server", ["wg", "set", wg_if, "peer", peer.strip(), "allowed-ips", wider])
    lab.run("server", ["ip", "route", "replace", f"{RECEPTION}/32", "dev", wg_if])
    assert not lab.tcp_connect("server", RECEPTION, 443, timeout=2)  # refused by the firewall
    assert wait_for(lambda: connects(box) == 1, 20)  # the monitor saw the tunnel come up
    # a config apply while the vendor is in: the daemon rebuilds its workers, nobody connects anew
    candidate = tmp_path / "changed.yaml"
    changed = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    changed["clinic"]["name"] = changed["clinic"]["name"] + "（変更）"
    candidate.write_text(yaml.safe_dump(changed, allow_unicode=True, sort_keys=False), encoding="utf-8")
    box.mamori("config", "apply", "--file", str(candidate), "-m", "作業中の設定変更")
    assert wait_for(lambda: "window_end" in box.mamori("vpn", "sessions", "vendor-a").stdout, 150)
    assert connects(box) == 1, box.mamori("vpn", "sessions", "vendor-a", "--log").stdout

    def report() -> str:
        return box.mamori("vpn", "windows", "--report", "1").stdout

    # the session's cut deletes its conntrack entries: both connections are closed, with their bytes
    assert wait_for(lambda: "接続中" not in report().split("接続先:")[1], 20), report()
    text = report()
    line = next((ln for ln in text.splitlines() if f"{EMR} tcp/22 x2" in ln), None)
    assert line is not None, text
    sent, received = (
        int(x.replace(",", "")) for x in re.search(r"送信 ([\d,]+) / 受信 ([\d,]+)", line).groups()
    )
    assert 2 * PAYLOAD <= sent < 2 * PAYLOAD * 1.2 and 0 < received < 50_000, line
    assert "承認された対象以外" not in line
    assert "ファイアウォールが拒否した接続:" in text and f"{RECEPTION} tcp/443" in text, text
    assert "IDS" not in text
