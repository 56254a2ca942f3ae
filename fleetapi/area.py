"""The fleet API declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="fleetapi",
    config=(("fleet", "fleetapi.model:FleetConfig"),),
    schema="fleetapi.schema",
    cli="fleetapi.cli",
    blueprints=("fleetapi.web", "fleetapi.api"),
    retention="fleetapi.retention",
    retention_share=0.01,  # a handful of token rows; taken from the ground floor's 0.05
)
