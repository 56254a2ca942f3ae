"""The `metrics:` section: where /metrics may listen (validated against the box's interfaces and zones, both
languages), and what the firewall opens for it (each port only on its address, only from metrics.zones)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from appliance.config.load import parse_config
from appliance.errors import ConfigError
from firewall.render import render_ruleset
from metrics.daemon import daemon_workers
from tests.unit.test_firewall_helpers import chain_rules, config, example_dict

GOLDEN = Path(__file__).parent / "golden" / "firewall_clinic_metrics_input.json"
MGMT = {"name": "lan0.40", "parent": "lan0", "vlan": 40, "zone": "mgmt", "address": "192.168.40.1/24"}


def _text(metrics: dict, extra_interfaces: list[dict] | None = None) -> str:
    data = copy.deepcopy(example_dict())
    data["interfaces"] += extra_interfaces or []
    data["metrics"] = metrics
    return yaml.safe_dump(data, allow_unicode=True)


def _issues(metrics: dict, extra: list[dict] | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as err:
        parse_config(_text(metrics, extra))
    return [(i.path, i.message.text("ja"), i.message.text("en")) for i in err.value.issues]


@pytest.mark.parametrize(
    "listen",
    [["192.168.10.1:9469"], ["10.99.0.1:9469"], ["192.168.40.1:9100", "192.168.10.1:9469"], []],
)
def test_internal_addresses_of_the_box_are_accepted(listen: list[str]) -> None:
    cfg = parse_config(_text({"listen": listen}, [MGMT])).model
    assert [f"{e.address}:{e.port}" for e in cfg.metrics.endpoints()] == listen
    assert cfg.metrics.zones == ["mgmt", "lan"] and cfg.metrics.token is False


@pytest.mark.parametrize(
    ("listen", "ja", "en"),
    [
        ("203.0.113.2:9469", "wan ゾーンのアドレスでは公開できません", "never served on a wan address"),
        ("192.168.20.1:9469", "guest ゾーンのアドレスでは公開できません", "never served on a guest address"),
        (
            "192.168.30.1:9469",
            "devices ゾーンのアドレスでは公開できません",
            "never served on a devices address",
        ),
        ("192.168.10.2:9469", "本機のどのポートの固定アドレスでもありません", "not a static address"),
    ],
)
def test_wan_guest_devices_and_foreign_addresses_are_refused(listen: str, ja: str, en: str) -> None:
    [(path, text_ja, text_en)] = _issues({"listen": [listen]})
    assert path == "metrics.listen[0]" and ja in text_ja and en in text_en


@pytest.mark.parametrize(
    "bad", ["192.168.10.1", "192.168.10.1:0", "192.168.10.1:70000", "fd00::1:9469", "0.0.0.0:9469",
            "127.0.0.1:9469", "host.example:9469", "[::]:9469"],
)  # fmt: skip
def test_malformed_or_wildcard_listen_is_refused(bad: str) -> None:
    [(path, text_ja, text_en)] = _issues({"listen": [bad]})
    assert path.startswith("metrics.listen") and text_ja and text_en


def test_wan_and_guest_are_not_scrape_zones() -> None:
    for zone in ("wan", "guest", "devices"):
        [(path, _, _)] = _issues({"listen": ["192.168.10.1:9469"], "zones": [zone]})
        assert path.startswith("metrics.zones")


def test_the_same_endpoint_twice_is_refused() -> None:
    [(path, ja, _)] = _issues({"listen": ["192.168.10.1:9469", "192.168.10.1:9469"]})
    assert path == "metrics.listen[1]" and "2回" in ja


def test_no_listen_no_worker_and_no_open_port() -> None:
    cfg = config()
    assert daemon_workers(None, cfg) == []  # type: ignore[arg-type]
    batch = render_ruleset(cfg)
    assert not any("9469" in r for c in ("in_lan", "in_mgmt", "in_vpn") for r in chain_rules(batch, c))


def _batch(metrics: dict) -> dict:
    data = copy.deepcopy(example_dict())
    data["interfaces"].append(MGMT)
    return render_ruleset(config(interfaces=data["interfaces"], metrics=metrics))


def test_port_open_only_on_its_address_and_only_from_the_named_zones() -> None:
    batch = _batch({"listen": ["192.168.40.1:9469", "192.168.10.1:9100"], "zones": ["mgmt"]})
    mgmt = [r for r in chain_rules(batch, "in_mgmt") if "9469" in r or "9100" in r]
    assert len(mgmt) == 2
    assert all('"daddr"' in r for r in mgmt)
    assert any('"192.168.40.1"' in r and "9469" in r for r in mgmt)
    assert any('"192.168.10.1"' in r and "9100" in r for r in mgmt)
    for chain in ("in_lan", "in_guest", "in_wan", "in_devices", "in_vpn"):
        assert not any("9469" in r or "9100" in r for r in chain_rules(batch, chain)), chain


def test_golden_input_chains_with_metrics() -> None:
    """Reviewed like code: the box's input chains when metrics listen on the mgmt VLAN and the LAN."""
    batch = _batch({"listen": ["192.168.40.1:9469", "192.168.10.1:9469"], "zones": ["mgmt", "lan"]})
    chains = {c: chain_rules(batch, c) for c in ("in_lan", "in_mgmt", "in_guest", "in_wan", "in_vpn")}
    rendered = json.dumps(chains, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if os.environ.get("MAMORI_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert rendered == GOLDEN.read_text(encoding="utf-8")
