"""Time (chronyd) declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="timesvc",
    config=(("ntp", "timesvc.model:NtpConfig"),),
    subsystems="timesvc.subsystem",
    workers=("timesvc.daemon",),
    cli="timesvc.cli",
    actions=("timesvc.web_actions",),
)
