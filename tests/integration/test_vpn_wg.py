"""The WireGuard interface driver against real wireguard-go in a throwaway namespace: a start that does
not come up in time leaves no process, pid file or link behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from appliance.errors import ApplyError
from tests.integration.test_firewall_helpers import netns
from vpn import wg
from vpn.wg import WgInterface

pytestmark = pytest.mark.integration


def test_wireguard_go_that_does_not_come_up_in_time_is_stopped(tmp_path, monkeypatch):
    name = f"wgt{os.getpid()}"
    monkeypatch.setattr(wg, "WAIT_S", 0.0)  # "not up in time": the check never gets to see it up
    with netns("vw") as ns:
        iface = WgInterface(name, run_dir=tmp_path, netns=ns)
        try:
            with pytest.raises(ApplyError) as exc:
                iface.create()
            assert "did not come up" in exc.value.text("en")
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            assert pids == []  # the wireguard-go we started is gone (killed by its pid, and reaped)
            assert not iface.pid_file.exists()
            assert not iface.exists()
            # and a normal start afterwards works (nothing left behind blocks the name or the socket)
            iface.wait_s = 5.0
            assert iface.create() == "wireguard-go"
            assert iface.dump().listen_port >= 0
        finally:
            iface.delete()
