"""Doctors on every Japanese line (issue 17): the listen port as a setting (MAP-E port sets), the path a new
doctor's .conf uses (direct, IPv6, the vendor hub's relay) and what the box says about reachability."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config.load import parse_config
from appliance.errors import ConfigError
from vpn.render import client_conf, render_interface
from vpn.store import Device

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml").read_text(encoding="utf-8")
SERVER = "obD+sX1AvDRLoUXOF6JYhPjCjq49eo949GIzyVVjhw4="


def cfg(text: str = EXAMPLE):
    return parse_config(text).model


def dev() -> Device:
    return Device(1, "yamada", "pc1", SERVER, "10.99.0.2", "fd4d:616d:6f72::2", True, 0.0, None)


def test_listen_port_inside_a_map_e_port_set_flows_everywhere():
    c = cfg(EXAMPLE.replace("listen_port: 51820", "listen_port: 41000"))
    assert render_interface(c).listen_port == 41000
    conf = client_conf(c, dev(), SERVER)
    assert "Endpoint = 203.0.113.2:41000" in conf
    assert "# 接続経路: 直接（医院のルーターから本機の UDP 41000番へ）" in conf
    # the firewall's wan rule follows it too: tests/unit/test_firewall_render.py (41000 in in_wan)


@pytest.mark.parametrize("port", [80, 1023])
def test_a_privileged_port_is_refused_with_the_map_e_hint(port):
    with pytest.raises(ConfigError) as exc:
        parse_config(EXAMPLE.replace("listen_port: 51820", f"listen_port: {port}"))
    issues = {i.path: i for i in exc.value.issues}
    assert "MAP-E" in issues["vpn.listen_port"].message.ja and "240" in issues["vpn.listen_port"].message.ja


def test_the_listen_port_help_names_map_e():
    from vpn.model import LISTEN_PORT_HELP_JA, VpnConfig

    assert "MAP-E" in LISTEN_PORT_HELP_JA and "240" in LISTEN_PORT_HELP_JA
    assert VpnConfig.model_json_schema()["properties"]["listen_port"]["description"] == LISTEN_PORT_HELP_JA
