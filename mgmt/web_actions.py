"""The management link's actions for the web UI (appliance.actions): its state, and cut the vendor's link now.

Run by the daemon: the state needs the link's private key (for the box's public key) and `wg show` (root's);
a cut takes the WireGuard interface down, then applies `mgmt.enabled: false` with the account's own
permissions (mgmt.actions.cut).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, action
from appliance.service import ConfigService
from webui.action_accounts import require

ACTION_NAMES = ("mgmt.status", "mgmt.cut")


@dataclass(frozen=True)
class StatusArgs:
    actor: str


@action("mgmt.status", StatusArgs)
def status(env: ActionEnv, args: StatusArgs) -> dict[str, Any]:
    """mgmt.status.link_state as a dict (the page)."""
    from mgmt.status import link_state
    from mgmt.web import PERMISSION

    require(env, args.actor, PERMISSION)
    return {"state": asdict(link_state(env.ctx))}


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
