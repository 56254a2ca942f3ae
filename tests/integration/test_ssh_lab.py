"""Maintenance SSH in the lab, nothing faked: the real `mamori daemon` runs sshd with the rendered config.
受付PC (lan) logs in as root with a key made by the test; a password login is refused; the guest phone
and the attacker (wan) cannot even open tcp/22; switching `ssh.enabled` off stops sshd and lan can no
longer connect. Every process is stopped by PID; traffic stays inside the lab's namespaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.box import Box
from tests.integration.test_firewall_helpers import wait_until

pytestmark = pytest.mark.integration

BOX_LAN, BOX_GUEST, BOX_WAN = "192.168.10.1", "192.168.20.1", "203.0.113.2"
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]  # fmt: skip


def sshd_pid(box: Box) -> int:
    state = box.state_dir / "run" / "sshd.state"
    return int(json.loads(state.read_text())["pid"]) if state.exists() else 0


def apply(box: Box, ssh: dict) -> None:
    data = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    data["ssh"] = ssh
    box.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    box.mamori("config", "apply", "-m", "ssh test")


def ssh(box: Box, host: str, key: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", str(key), *SSH_OPTS, *extra, f"root@{BOX_LAN}", "true"]
    return box.lab.run(host, argv, check=False, timeout=20)


def test_ssh_from_lan_with_a_key_only_and_off_again(box: Box, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-vendor", "-f", str(key)], check=True
    )
    apply(box, {"enabled": True, "authorized_keys": [key.with_suffix(".pub").read_text().strip()]})
    box.start_daemon()
    first = 0
    try:
        assert (
            wait_until(lambda: box.lab.tcp_connect("reception", BOX_LAN, 22, timeout=1), timeout=15)
            is not None
        ), (box.state_dir / "run" / "sshd.log").read_text()
        first = sshd_pid(box)
        res = ssh(box, "reception", key)
        assert res.returncode == 0, res.stderr
        # keys only: a password login is refused without ever asking
        res = ssh(
            box, "reception", key, "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"
        )
        assert res.returncode != 0 and "Permission denied (publickey)" in res.stderr, (
            res.stderr
        )  # only method offered
        # guests and the internet cannot even open the port (dropped by the firewall, sshd not listening there)
        assert not box.lab.tcp_connect("phone", BOX_GUEST, 22, timeout=1)
        assert not box.lab.tcp_connect("phone", BOX_LAN, 22, timeout=1)
        assert not box.lab.tcp_connect("attacker", BOX_WAN, 22, timeout=1)
        assert "ListenAddress 192.168.10.1" in (box.state_dir / "run" / "ssh" / "sshd_config").read_text()

        # A vendor still logged in when SSH is switched off is logged out, not left inside.
        argv = ["ip", "netns", "exec", box.lab.ns("reception"), "ssh", "-i", str(key), *SSH_OPTS,
                f"root@{BOX_LAN}", "echo in; sleep 60"]  # fmt: skip
        session = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        box.lab.processes.append(session)
        assert session.stdout.readline().strip() == "in"
        status = box.mamori("--lang", "en", "ssh", "status").stdout
        assert f"sshd running (pid {first})" in status and "open sessions: 1" in status, status
        assert "192.168.10.1 port 22" in status and "lab-vendor" in status and "SHA256:" in status, status
        apply(box, {"enabled": False, "authorized_keys": []})
        assert wait_until(lambda: not Path(f"/proc/{first}").exists(), timeout=15) is not None
        session.wait(timeout=15)  # raises if the session outlived the switch-off
        assert session.returncode != 0
        assert not box.lab.tcp_connect("reception", BOX_LAN, 22, timeout=1)
        assert ssh(box, "reception", key).returncode != 0
        assert box.mamori("--lang", "en", "ssh", "status").stdout.strip() == "maintenance SSH: off"
    finally:
        box.stop_daemon()
        pid = sshd_pid(box)
        for p in {pid, first} - {0}:
            try:  # only our sshd (its title names this box's sshd_config), never a reused PID
                if str(box.state_dir).encode() in Path(f"/proc/{p}/cmdline").read_bytes():
                    os.kill(p, signal.SIGTERM)
            except (OSError, ProcessLookupError):
                pass
