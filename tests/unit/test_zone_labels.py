"""One Japanese name per zone wherever a person reads it (appliance.zones): the firewall and devices pages,
the wizard, the IDS's alert labels and the monthly report all show the same words."""

from __future__ import annotations

from pathlib import Path

from appliance.config.types import ALL_ZONES
from appliance.zones import PLACE_LABELS, ZONE_LABELS, zone_label
from webui.wizard import ZONE_CHOICES

REPO = Path(__file__).resolve().parents[2]
OLD_SPELLINGS = ("院内LAN", "診療系(lan)", "医療機器ネットワーク", "管理用ネットワーク", "患者さん用Wi-Fi(guest)",
                 "医療機器(devices)", "管理用(mgmt)")  # fmt: skip


def test_every_zone_of_the_config_has_its_name() -> None:
    assert set(ZONE_LABELS) == set(ALL_ZONES)
    assert zone_label("lan") == "院内" and zone_label("box") == "Mamori 本体" and zone_label(None) == "不明"
    assert zone_label("dmz") == "dmz"  # a key without a name is shown as it is, never hidden
    assert set(ZONE_LABELS) <= set(PLACE_LABELS)


def test_the_wizard_starts_each_choice_with_the_zones_name() -> None:
    for zone, label in ZONE_CHOICES:
        if zone:
            assert label.startswith(ZONE_LABELS[zone]), (zone, label)


def test_no_product_module_spells_a_zone_another_way() -> None:
    found = []
    for folder in ("appliance", "firewall", "ids", "reports", "webui", "vpn", "metrics"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".html") and path.is_file():
                text = path.read_text(encoding="utf-8")
                found += [f"{path.relative_to(REPO)}: {w}" for w in OLD_SPELLINGS if w in text]
    assert found == []
