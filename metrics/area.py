"""Metrics declare themselves to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="metrics",
    config=(("metrics", "metrics.model:MetricsConfig"),),
    checks=("metrics.model:listen_issues",),
    workers=("metrics.daemon",),
    cli="metrics.cli",
)
