"""NTP in the lab, nothing faked: a chronyd on the internet-side server is the upstream; the real
`mamori daemon` runs the box's chronyd (set_clock off: the lab shares this machine's clock), which
synchronises to it and then answers the clinic's zones as the policy table says (docs/firewall.md):
lan and devices get the time from the box; guests get no NTP from the box (but, like any internet
service, may reach an NTP server outside); the internet gets nothing from the box's wan address.
The worker keeps chronyd across an unrelated config change, restarts it when `ntp:` changes, and starts
it again when it dies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from appliance.paths import Paths
from lab.box import Box
from tests.integration.test_firewall_helpers import wait_until
from timesvc.render import chrony_dir

pytestmark = pytest.mark.integration

UPSTREAM = "198.51.100.10"

# A minimal SNTP client (RFC 4330): one mode-3 request, bounded retries; prints stratum and server time.
SNTP = r"""
import json, socket, struct, sys, time
addr = sys.argv[1]
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.settimeout(1.0)
    for _ in range(3):
        s.sendto(b"\x23" + b"\0" * 47, (addr, 123))
        try:
            data, _src = s.recvfrom(512)
        except socket.timeout:
            continue
        secs, frac = struct.unpack("!II", data[40:48])
        print(json.dumps({"stratum": data[1], "leap": data[0] >> 6, "mode": data[0] & 7,
                          "time": secs - 2208988800 + frac / 2**32}))
        sys.exit(0)
print("{}")
sys.exit(1)
"""


def sntp(box: Box, host: str, address: str) -> dict:
    res = box.lab.run(host, [sys.executable, "-c", SNTP, address], check=False, timeout=20)
    return json.loads(res.stdout or "{}")


def start_upstream(box: Box, tmp_path: Path) -> None:
    """chronyd on the lab's server: its own clock at stratum 8, never setting it, no command socket."""
    d = tmp_path / "upstream"
    d.mkdir(mode=0o700)
    conf = d / "chrony.conf"
    conf.write_text(f"local stratum 8\nallow all\ncmdport 0\nbindcmdaddress {d}/s.sock\npidfile {d}/pid\n",
                    encoding="utf-8")  # fmt: skip
    box.lab.spawn("server", ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)], log_path=d / "log")


def status(box: Box) -> dict:
    return json.loads(box.mamori("time", "status", "--json", check=False).stdout or "{}")


def chronyd_pid(box: Box) -> int:
    state = box.state_dir / "run" / "chrony.state"
    return int(json.loads(state.read_text())["pid"]) if state.exists() else 0


def stop_all(box: Box) -> None:
    """Stop the daemon, then the chronyd it left running (by PID), and remove chronyd's /run directory."""
    box.stop_daemon()
    pid = chronyd_pid(box)
    if pid and Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
    shutil.rmtree(chrony_dir(Paths(config=box.config, state_dir=box.state_dir)), ignore_errors=True)


def apply(box: Box, change) -> None:
    data = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    change(data)
    box.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    box.mamori("config", "apply", "-m", "ntp test")


def test_box_serves_ntp_by_the_policy_table(box: Box, tmp_path: Path) -> None:
    start_upstream(box, tmp_path)
    box.start_daemon()
    try:
        assert wait_until(lambda: status(box).get("synchronised") is True, timeout=40, step=1) is not None, (
            box.state_dir / "run" / "chronyd.log"
        ).read_text()
        st = status(box)
        assert st["upstream"] == UPSTREAM and st["stratum"] == 9 and abs(st["offset_s"]) < 0.5
        assert "同期: はい" in box.mamori("time", "status").stdout
        # the checklist (2⑥) and the monthly report show the clock
        doc = json.loads(box.mamori("report", "checklist", "--format", "json").stdout)
        assert doc["clock"]["synchronised"] is True and doc["clock"]["upstream"] == UPSTREAM
        access_log = next(i for i in doc["items"] if i["key"] == "2-6")
        row = dict(access_log["rows"])["本機の時計（NTP）"]
        assert row.startswith(f"同期済み（{UPSTREAM}、ずれ ") and row.endswith("階層 9）")
        assert access_log["state"] == "はい", access_log["evidence"]
        box.mamori("report", "monthly", "--month", time.strftime("%Y-%m"), "--out", str(tmp_path), "--no-pdf")
        assert f"同期済み（{UPSTREAM}" in (tmp_path / f"{time.strftime('%Y-%m')}.html").read_text(
            encoding="utf-8"
        )

        for host, address in (("reception", "192.168.10.1"), ("xray", "192.168.30.1")):
            answer = sntp(box, host, address)
            assert answer.get("stratum") == 9 and answer["mode"] == 4, (host, answer)
            assert abs(answer["time"] - time.time()) < 5  # the lab shares the machine's clock
        assert sntp(box, "phone", "192.168.20.1") == {}  # guests: no NTP from the box (policy)
        assert sntp(box, "phone", UPSTREAM).get("stratum") == 8  # ...but internet NTP like any guest traffic
        assert sntp(box, "attacker", "203.0.113.2") == {}  # the internet: nothing from the wan address
    finally:
        stop_all(box)


def _started_generations(box: Box) -> int:
    log = (box.state_dir / "daemon.log").read_text(encoding="utf-8", errors="replace")
    return log.count("started workers:")


def test_worker_restarts_chronyd_only_when_needed(box: Box, tmp_path: Path) -> None:
    start_upstream(box, tmp_path)
    box.start_daemon()
    try:
        assert wait_until(lambda: chronyd_pid(box) > 0, timeout=15) is not None
        first = chronyd_pid(box)
        apply(
            box, lambda d: d["firewall"]["rules"].append({"src": "受付PC", "dst": "PACS", "service": "HTTPS"})
        )
        # the daemon has started the new worker generation, which adopted chronyd (a fixed 3 s could end
        # before the restart on a loaded machine)
        assert wait_until(lambda: _started_generations(box) >= 2, timeout=30) is not None
        assert chronyd_pid(box) == first and Path(f"/proc/{first}").exists()  # not restarted

        apply(box, lambda d: d["ntp"].update(servers=[UPSTREAM, "198.51.100.20"]))
        assert wait_until(lambda: chronyd_pid(box) not in (0, first), timeout=15) is not None
        second = chronyd_pid(box)
        assert wait_until(lambda: len(status(box).get("sources", [])) == 2, timeout=15) is not None

        os.kill(second, signal.SIGKILL)  # chronyd dies: the worker starts it again after a short pause
        assert wait_until(lambda: chronyd_pid(box) not in (0, second), timeout=20) is not None
        assert wait_until(lambda: status(box).get("running") is True, timeout=15) is not None

        apply(box, lambda d: d["ntp"].update(enabled=False))  # switched off: chronyd stopped
        third = chronyd_pid(box)
        assert wait_until(lambda: not Path(f"/proc/{third}").exists(), timeout=15) is not None
        assert status(box)["enabled"] is False
    finally:
        stop_all(box)
