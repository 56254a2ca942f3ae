"""The IDS declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="ids",
    config=(("ids", "ids.model:IdsConfig"),),
    schema="ids.schema",
    subsystems="ids.subsystem",
    workers=("ids.daemon",),
    cli="ids.cli",
    actions=("ids.web_actions",),
    retention="ids.retention",
    web_start="ids.web_start",
    retention_share=0.80,  # IDS events and alerts are nearly all of the volume
)
