"""Logs to a SIEM declare themselves to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="siem",
    config=(("siem", "siem.model:SiemConfig"),),
    checks=("siem.model:config_issues",),
    schema="siem.schema",
    subsystems="siem.subsystem",
    workers=("siem.daemon",),
    cli="siem.cli",
)
