"""Software updates declare themselves to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="update",
    config=(("update", "update.model:UpdateConfig"),),
    workers=("update.daemon",),
    cli="update.cli",
    blueprints=("update.web",),
    actions=("update.web_actions",),
)
