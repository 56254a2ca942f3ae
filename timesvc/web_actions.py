"""The clock's state for the web UI's 設定 → 時刻 page (appliance.actions).

Run by the daemon: chronyd answers on a unix socket in its own directory (the _chrony user's, 0750), which
only root and _chrony may use; `mamori-web` cannot. Read only; settings.view, as the page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, action
from webui.action_accounts import require

ACTION_NAMES = ("time.status",)
CHRONYC_TIMEOUT = 2.0  # two chronyc calls; the page must not hang on a stuck chronyd


@dataclass(frozen=True)
class StatusArgs:
    actor: str


@action("time.status", StatusArgs)
def status(env: ActionEnv, args: StatusArgs) -> dict[str, Any]:
    """timesvc.status.clock_state, as a dict."""
    from timesvc.status import clock_state

    require(env, args.actor, "settings.view", "audit.view")  # the settings page, the checklist (reports)
    return {"state": asdict(clock_state(env.ctx, timeout=CHRONYC_TIMEOUT))}
