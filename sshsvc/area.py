"""Maintenance SSH declares itself to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="sshsvc",
    config=(("ssh", "sshsvc.model:SshConfig"),),
    checks=("sshsvc.model:listen_issues",),
    subsystems="sshsvc.subsystem",
    workers=("sshsvc.daemon",),
    cli="sshsvc.cli",
)
