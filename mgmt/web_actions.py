"""The management link's action for the web UI (appliance.actions): cut the vendor's link now.

Run by the daemon: the WireGuard interface goes down, then `mgmt.enabled: false` is applied with the
account's own permissions (mgmt.actions.cut).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, action
from appliance.service import ConfigService
from webui.action_accounts import require

ACTION_NAMES = ("mgmt.cut",)


@dataclass(frozen=True)
class CutArgs:
    actor: str
    remote: str = ""


@action("mgmt.cut", CutArgs)
def cut_link(env: ActionEnv, args: CutArgs) -> dict[str, Any]:
    """Cut the vendor's management link (audited, notice to the clinic, config change)."""
    from mgmt.actions import cut
    from mgmt.web import PERMISSION

    authority = require(env, args.actor, PERMISSION)
    rev = cut(env.ctx, args.actor, "web", args.remote[:64], authority=authority,
              service=ConfigService(env.ctx, subsystems=env.subsystems))  # fmt: skip
    return {"revision": rev.id if rev else None}
