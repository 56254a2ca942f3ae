"""IPv6 on the wan from the router's advertisements (interfaces[].ipv6_auto), with a real radvd on the lab's
router: the box forwards, which makes the kernel ignore router adverts unless the network subsystem sets
accept_ra=2; with it, the box takes a SLAAC address in the advertised prefix and its IPv6 default route from
the router, and reaches the internet side over IPv6. Switching it off puts the kernel's default back."""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, make_box
from lab.topology import Lab
from lab.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("radvd") is None, reason="run make setup (radvd)"),
]
PREFIX = ipaddress.ip_network("2001:db8:17::/64")
ROUTER_IN, ROUTER_OUT, SERVER6 = "2001:db8:17::1/64", "2001:db8:ffff::1/64", "2001:db8:ffff::10/64"
RADVD = """interface eth1 {
  AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4; AdvDefaultLifetime 600;
  prefix 2001:db8:17::/64 { AdvOnLink on; AdvAutonomous on; };
};
"""


def _config(ipv6_auto: bool) -> str:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    for iface in data["interfaces"]:
        if iface["zone"] == "wan":
            iface["ipv6_auto"] = ipv6_auto
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _global6(lab: Lab, usable: bool = True) -> list[str]:
    """The wan's global IPv6 addresses the box can use: a SLAAC address is tentative until duplicate address
    detection has passed (about 1-2 s after the advert), and the kernel will not send from it before then
    (ping would leave from the link-local address and its replies could never come back)."""
    out = json.loads(
        lab.run("box", ["ip", "-j", "-6", "addr", "show", "dev", "wan0", "scope", "global"]).stdout
    )
    return [
        a["local"]
        for link in out
        for a in link.get("addr_info", [])
        if "local" in a and not (usable and (a.get("tentative") or a.get("dadfailed")))
    ]


def _default6(lab: Lab) -> str:
    return lab.run("box", ["ip", "-6", "route", "show", "default"]).stdout


def test_the_wan_takes_its_ipv6_address_and_route_from_the_router(lab: Lab, tmp_path: Path) -> None:
    for key in ("box", "router", "server"):
        lab.run(
            key, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]
        )
    lab.run("router", ["ip", "-6", "addr", "add", ROUTER_IN, "dev", "eth1", "nodad"])
    lab.run("router", ["ip", "-6", "addr", "add", ROUTER_OUT, "dev", "eth0", "nodad"])
    lab.run("router", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
    lab.run("server", ["ip", "-6", "addr", "add", SERVER6, "dev", "eth0", "nodad"])
    lab.run("server", ["ip", "-6", "route", "add", "default", "via", ROUTER_OUT.split("/")[0]])
    conf = tmp_path / "radvd.conf"
    conf.write_text(RADVD, encoding="utf-8")
    conf.chmod(0o644)
    radvd = lab.spawn(
        "router",
        ["radvd", "-n", "-C", str(conf), "-p", str(tmp_path / "radvd.pid"), "-m", "stderr"],
        log_path=tmp_path / "radvd.log",
    )

    box = make_box(lab, tmp_path / "state", _config(ipv6_auto=False))
    box.mamori("config", "apply", "-m", "IPv6 なし")
    assert wait_for(lambda: radvd.poll() is None, timeout=3)  # radvd runs (and advertises every 3-4 s)
    assert lab.run("box", ["sysctl", "-n", "net.ipv6.conf.wan0.accept_ra"]).stdout.strip() == "1"
    # Adverts arrive, and a forwarding box ignores them: not even a tentative address.
    assert not wait_for(lambda: _global6(lab, usable=False), timeout=9)

    box.config.write_text(_config(ipv6_auto=True), encoding="utf-8")
    box.mamori("config", "apply", "-m", "IPv6 をルーターから")
    assert lab.run("box", ["sysctl", "-n", "net.ipv6.conf.wan0.accept_ra"]).stdout.strip() == "2"
    assert wait_for(lambda: any(ipaddress.ip_address(a) in PREFIX for a in _global6(lab)), timeout=20), (
        tmp_path / "radvd.log"
    ).read_text(errors="replace")
    assert wait_for(lambda: "via fe80::" in _default6(lab), timeout=20), _default6(lab)
    ping = lab.run("box", ["ping", "-6", "-c", "2", "-W", "2", SERVER6.split("/")[0]], check=False)
    assert ping.returncode == 0, "\n".join(
        (
            ping.stdout,
            ping.stderr,
            lab.run("box", ["ip", "-6", "addr", "show", "dev", "wan0"]).stdout,
            _default6(lab),
        )
    )

    box.config.write_text(_config(ipv6_auto=False), encoding="utf-8")
    box.mamori("config", "apply", "-m", "IPv6 を止める")
    assert lab.run("box", ["sysctl", "-n", "net.ipv6.conf.wan0.accept_ra"]).stdout.strip() == "1"
