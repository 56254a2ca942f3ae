"""Reports declare themselves to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="reports",
    schema="reports.schema",
    workers=("reports.daemon",),
    cli="reports.cli",
    blueprints=("reports.web",),
    actions=("reports.web_actions",),
    retention="reports.retention",
    retention_share=0.01,
)
