"""The web UI declares itself to the ground floor (appliance.area, listed in appliance.areas).
Its own pages are the app's (webui.app); other areas add theirs through their `blueprints`."""

from appliance.area import Area

AREA = Area(
    name="webui",
    schema="webui.schema",
    workers=("webui.tls_renew",),
    clock_step="webui.clockstep",
    cli="webui.cli",
    actions=("webui.web_actions", "webui.notify_actions", "webui.setup_actions"),
    retention="webui.retention",
    web_start="webui.web_start",
    retention_share=0.01,
)
