"""Schema migrations run in order before validation; a config from the future is refused."""

from __future__ import annotations

import pytest

from appliance.config.migrate import migrate
from appliance.errors import ConfigError


def rename_zones(raw: dict) -> dict:
    """A sample migration: version 1 wrote `zones: {lan: eth1}`, version 2 writes `interfaces`."""
    out = {k: v for k, v in raw.items() if k != "zones"}
    out["interfaces"] = [{"name": ifname, "zone": zone} for zone, ifname in raw.get("zones", {}).items()]
    return out


def add_comment(raw: dict) -> dict:
    return {**raw, "comment": "migrated"}


def test_migrations_chain_in_order() -> None:
    raw = {"schema_version": 1, "zones": {"lan": "eth1", "wan": "eth0"}}
    out = migrate(raw, 3, {1: rename_zones, 2: add_comment})
    assert out["schema_version"] == 3
    assert out["interfaces"] == [{"name": "eth1", "zone": "lan"}, {"name": "eth0", "zone": "wan"}]
    assert out["comment"] == "migrated"
    assert raw == {"schema_version": 1, "zones": {"lan": "eth1", "wan": "eth0"}}  # input untouched


def test_current_version_passes_through() -> None:
    assert migrate({"schema_version": 2, "a": 1}, 2, {1: rename_zones}) == {"schema_version": 2, "a": 1}


@pytest.mark.parametrize(
    ("raw", "ja"),
    [
        ({"schema_version": 5}, "新しい版（5）"),
        ({"schema_version": 0}, "1 以上の整数"),
        ({"schema_version": "one"}, "1 以上の整数"),
        ({"schema_version": 1}, "版 1 からの移行方法がありません"),
    ],
)
def test_refused_versions(raw: dict, ja: str) -> None:
    with pytest.raises(ConfigError) as info:
        migrate(raw, 3, {2: add_comment})
    assert ja in info.value.text("ja")
