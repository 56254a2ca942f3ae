"""The VPN declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="vpn",
    config=(("vpn", "vpn.model:VpnConfig"),),
    checks=("vpn.lines:line_issues",),
    schema="vpn.schema",
    subsystems="vpn.subsystem",
    workers=("vpn.daemon",),
    clock_step="vpn.clockstep",
    cli="vpn.cli",
    actions=("vpn.web_actions", "vpn.portal_actions"),
    retention="vpn.retention",
    retention_share=0.05,
)
