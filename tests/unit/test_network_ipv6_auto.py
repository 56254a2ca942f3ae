"""IPv6 from the router's advertisements on the wan (interfaces[].ipv6_auto): the box forwards, so the kernel
ignores router adverts unless accept_ra is 2; the plan says so for the wan only, and switching it off puts the
kernel's default back. The lab proof with a real radvd is tests/integration/test_network_ipv6_auto.py."""

from __future__ import annotations

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import ConfigError
from appliance.network import ipv6_conf, render_network
from lab.box import EXAMPLE_CONFIG


def _config(**wan: object) -> str:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    for iface in data["interfaces"]:
        if iface["zone"] == "wan":
            iface.update(wan)
    return yaml.safe_dump(data, allow_unicode=True)


def test_the_wan_takes_router_adverts_when_asked() -> None:
    plan = render_network(parse_config(_config(ipv6_auto=True)).model)
    assert plan.wan == "wan0" and plan.ipv6_auto == ("wan0",)
    assert ipv6_conf(plan) == {"wan0": {"accept_ra": "2", "autoconf": "1", "use_tempaddr": "0"}}


def test_without_it_the_kernel_default_is_put_back() -> None:
    plan = render_network(parse_config(_config()).model)
    assert plan.ipv6_auto == ()
    assert ipv6_conf(plan) == {"wan0": {"accept_ra": "1"}}


def test_only_the_wan_may_take_adverts() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    lan = next(i for i in data["interfaces"] if i["zone"] == "lan")
    lan["ipv6_auto"] = True
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(data, allow_unicode=True))
    assert [i.path for i in err.value.issues] == ["interfaces[1].ipv6_auto"]
