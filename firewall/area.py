"""The firewall declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="firewall",
    config=(("firewall", "firewall.model:FirewallConfig"), ("dhcp", "firewall.model:DhcpConfig")),
    schema="firewall.schema",
    subsystems="firewall.subsystem",
    workers=("firewall.daemon",),
    clock_step="firewall.clockstep",
    cli="firewall.cli",
    retention="firewall.retention",
    retention_share=0.07,
)
