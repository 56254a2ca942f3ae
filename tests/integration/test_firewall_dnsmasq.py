"""dnsmasq for real in a namespace: `--test` refuses a broken config, DNS answers, restart only on change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from appliance.errors import ApplyError
from firewall.dnsmasq import DnsmasqSubsystem, dnsmasq_test
from firewall.dnsmasq_worker import DnsmasqWorker
from tests.integration.test_firewall_helpers import dns_a, in_ns, netns, sh, state_ctx, wait_until
from tests.unit.test_firewall_helpers import config

pytestmark = pytest.mark.integration


def _supervise(state: str, configs: list, seconds_each: float) -> list[int]:
    """In the namespace: apply each config in turn under a running worker; the dnsmasq PID after each.

    Between configs the worker generation is replaced (as the daemon does on every new revision)."""
    ctx = state_ctx(state)
    sub = DnsmasqSubsystem(ctx)
    pids = []
    try:
        for cfg in configs:
            rendered = sub.render(cfg)
            sub.check(rendered)
            sub.apply(rendered)
            sub.verify(rendered)
            stop, worker = threading.Event(), DnsmasqWorker(ctx, poll=0.2)
            thread = threading.Thread(target=worker.run, args=(stop,))
            thread.start()
            time.sleep(seconds_each)
            stop.set()
            thread.join(15)
            pids.append(worker.pid or -1)
    finally:
        DnsmasqWorker(ctx).shutdown()
    return pids


def test_dns_answers_and_restarts_only_on_change(tmp_path: Path) -> None:
    with netns("d") as ns:
        for name, addr in (("wan0", "203.0.113.2/24"), ("lan0", "192.168.10.1/24"), ("guest0", "192.168.20.1/24"),
                           ("dev0", "192.168.30.1/24")):  # fmt: skip
            sh(
                ns, "ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"
            )  # no dummy module here
            sh(ns, "ip", "link", "set", f"{name}p", "up")
            sh(ns, "ip", "addr", "add", addr, "dev", name)
            sh(ns, "ip", "link", "set", name, "up")
        base = config()
        more = config(
            hosts=[*[h.model_dump() for h in base.hosts], {"name": "printer", "ip": "192.168.10.40"}]
        )
        result: dict = {}

        def probe() -> str:
            result["pacs"] = dns_a(lambda argv: sh(ns, *argv, check=False), "192.168.10.1", "pacs.clinic.lan")
            return result["pacs"]

        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(in_ns, ns, _supervise, str(tmp_path), [base, base, more], 2.5)
            # asked while the worker generations run, until it answers (a fixed 1.2 s could come before the
            # first dnsmasq listened on a loaded machine)
            wait_until(lambda: probe() == "192.168.10.30" or fut.done(), timeout=30)
            pids = fut.result(timeout=60)
        assert result["pacs"] == "192.168.10.30"
        assert pids[0] > 0 and pids[0] == pids[1], (
            pids
        )  # same config, new worker generation: adopted, not restarted
        assert pids[2] > 0 and pids[2] != pids[1], pids  # changed config: restarted
        assert wait_until(lambda: "dnsmasq" not in sh(ns, "ss", "-Hlunp").stdout, timeout=5) is not None


def test_dnsmasq_test_refuses_a_broken_config() -> None:
    with pytest.raises(ApplyError) as info:
        dnsmasq_test("dhcp-range=not-an-address\n")
    assert info.value.code == "dnsmasq.test"
