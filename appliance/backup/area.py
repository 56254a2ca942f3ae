"""Backups declare themselves to the ground floor (appliance.area, listed in appliance.areas)."""

from appliance.area import Area

AREA = Area(
    name="backup",
    config=(("backup", "appliance.backup.model:BackupConfig"),),
    schema="appliance.backup.schema",
    workers=("appliance.backup.daemon",),
    cli="appliance.backup.cli",
    actions=("appliance.backup.web_actions",),
    retention="appliance.backup.retention",
    retention_share=0.01,
)
