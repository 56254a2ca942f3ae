"""The management link declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="mgmt",
    config=(("mgmt", "mgmt.model:MgmtConfig"),),
    checks=("mgmt.model:link_issues",),
    subsystems="mgmt.subsystem",
    workers=("mgmt.daemon",),
    cli="mgmt.cli",
    blueprints=("mgmt.web",),
    actions=("mgmt.web_actions",),
)
