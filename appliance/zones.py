"""What a zone is called where a person reads it: one Japanese name per zone for every page, report, alert
and message (they were spelled four ways; tests/unit/test_zone_labels.py keeps it one). The names are the web UI's
main pages' (the firewall and devices pages). The config keeps the short English keys; these are display only.
"""

from __future__ import annotations

ZONE_LABELS: dict[str, str] = {
    "wan": "インターネット",
    "lan": "院内",
    "guest": "患者さん用Wi-Fi",
    "devices": "医療機器",
    "vpn": "VPN",
    "mgmt": "管理用",
}

# Where an address of an alert lies that is not one of the config's zones (ids.alerts.Resolver).
PLACE_LABELS: dict[str, str] = {**ZONE_LABELS, "internet": "インターネット", "box": "Mamori 本体"}


def zone_label(zone: str | None, unknown: str = "不明") -> str:
    """The zone's Japanese name; a zone without one is shown by its key, no zone as `unknown`."""
    if not zone:
        return unknown
    return PLACE_LABELS.get(zone, zone)
