"""Named actions the web UI may ask the daemon for (OPNsense configd's idea): a fixed allow-list, each action
with a typed argument record that is checked strictly, run by the daemon under its own privileges.

The web UI process itself changes nothing on the system: it sends `{"action": name, "args": {...}}` over a
local socket (appliance.actions.server) and the daemon runs the action's handler (appliance.actions.registry).
An unknown action, an unknown or missing argument, a value of the wrong type: refused before anything runs,
with a clear error. Tests use the same registry in-process (webui.actions.LocalActions).
"""

from appliance.actions.registry import ACTIONS, ActionEnv, ActionError, dispatch, handle_request

__all__ = ["ACTIONS", "ActionEnv", "ActionError", "dispatch", "handle_request"]
