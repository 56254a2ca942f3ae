"""/metrics in the lab, nothing faked: the real `mamori daemon` serves the exposition on the box's LAN address;
受付PC (lan) scrapes it (and needs the bearer token once `metrics.token` is on); the guest phone and the
attacker (wan) cannot open the port, on any of the box's addresses. Traffic stays inside the lab."""

from __future__ import annotations

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lab.box import Box
from tests.integration.test_firewall_helpers import wait_until

pytestmark = pytest.mark.integration

BOX_LAN, BOX_GUEST, BOX_WAN = "192.168.10.1", "192.168.20.1", "203.0.113.2"
PORT = 9469


def apply(box: Box, metrics: dict) -> None:
    data = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    data["metrics"] = metrics
    box.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    box.mamori("config", "apply", "-m", "metrics test")


def scrape(box: Box, host: str, *headers: str) -> tuple[str, str]:
    argv = [
        "curl",
        "-s",
        "-m",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        *headers,
        f"http://{BOX_LAN}:{PORT}/metrics",
    ]
    out = box.lab.run(host, argv, check=False, timeout=20).stdout
    body, _, code = out.rpartition("\n")
    return code, body


def test_lan_scrapes_guest_and_wan_cannot_reach(box: Box) -> None:
    apply(box, {"listen": [f"{BOX_LAN}:{PORT}"], "zones": ["lan"]})
    box.start_daemon()
    try:
        assert wait_until(lambda: box.lab.tcp_connect("reception", BOX_LAN, PORT, timeout=1), timeout=20)
        code, body = scrape(box, "reception")
        assert code == "200", body
        names = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
        assert names["mamori_up"] == 1 and names["mamori_config_revision"] >= 1
        assert names["mamori_state_disk_size_bytes"] > 0
        # the guest Wi-Fi and the internet cannot open the port on any address of the box
        for host, addr in (
            ("phone", BOX_LAN),
            ("phone", BOX_GUEST),
            ("attacker", BOX_WAN),
            ("attacker", BOX_LAN),
        ):
            assert not box.lab.tcp_connect(host, addr, PORT, timeout=1), (host, addr)

        apply(box, {"listen": [f"{BOX_LAN}:{PORT}"], "zones": ["lan"], "token": True})
        token = box.mamori("metrics", "--token").stdout.strip()
        assert wait_until(lambda: scrape(box, "reception")[0] == "401", timeout=20)
        code, body = scrape(box, "reception", "-H", f"Authorization: Bearer {token}")
        assert code == "200" and "mamori_up 1.0" in body
    finally:
        box.stop_daemon()
