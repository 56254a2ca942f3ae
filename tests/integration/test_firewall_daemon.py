"""The real `mamori daemon` in the lab box runs the firewall area's workers: dnsmasq (DNS answers; not
restarted by a change that leaves it alone), the NFLOG drop log (`fw drops`), the inventory."""

from __future__ import annotations

import pytest
import yaml

from lab.box import Box
from tests.integration.test_firewall_helpers import dns_a, tcp_ok, wait_until

pytestmark = pytest.mark.integration


def _dnsmasq_pid(box: Box) -> str:
    out = box.lab.run("box", ["ss", "-Hlunp", "sport", "= :53"], check=False).stdout
    return out.split("pid=")[1].split(",")[0] if "dnsmasq" in out and "pid=" in out else ""


def _started_generations(box: Box) -> int:
    """Worker generations the daemon has started (one at start, one per applied revision)."""
    log = (box.state_dir / "daemon.log").read_text(encoding="utf-8", errors="replace")
    return log.count("started workers:")


def test_daemon_runs_dns_droplog_and_inventory(box: Box) -> None:
    lab = box.lab
    box.start_daemon()
    try:
        assert wait_until(lambda: _dnsmasq_pid(box) != "", timeout=15) is not None
        pid = _dnsmasq_pid(box)
        assert (
            dns_a(lambda argv: lab.run("reception", argv, check=False), "192.168.10.1", "pacs.clinic.lan")
            == "192.168.10.30"
        )
        # a dropped connection shows up in `fw drops` (NFLOG -> daemon -> SQLite)
        assert not tcp_ok(lab, "phone", "192.168.10.10", 443, timeout=0.7)
        assert wait_until(lambda: "guest>lan" in box.mamori("fw", "drops").stdout, timeout=10) is not None
        # a firewall-only change: dnsmasq keeps running with the same PID
        data = yaml.safe_load(box.config.read_text(encoding="utf-8"))
        data["firewall"]["rules"].append({"src": "受付PC", "dst": "PACS", "service": "DICOM"})
        candidate = box.state_dir / "candidate.yaml"
        candidate.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        box.mamori("config", "apply", "--file", str(candidate), "-m", "ルール追加")
        # the daemon has restarted its workers for the new revision (a fixed 2.5 s could end before that on a
        # loaded machine, and the check below would have looked at the old generation)
        assert wait_until(lambda: _started_generations(box) >= 2, timeout=30) is not None
        assert _dnsmasq_pid(box) == pid
        # the inventory knows the clinic PCs that talked to the box
        assert lab.ping("reception", "192.168.10.1")
        devices = box.mamori("fw", "devices", "--scan").stdout
        assert "192.168.10.20" in devices and "lan" in devices
    finally:
        box.stop_daemon()
    log = (box.state_dir / "daemon.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
