"""The setup code as actions (appliance.actions): the first administrator's proof of being at the box.

Run by the daemon: the code lives in the key directory (webui.setup_code), root's; the web UI never reads it.
There is no account to check yet, so the gate is the state of setup itself: while no administrator who can
sign in exists, `web.setup_code_check` makes the code on first use and compares what was typed (the box-wide
failure count and lockout are webui.setup_code's, with the daemon's clock); once one exists it refuses, and
`web.setup_code_discard` removes the code (and only then: a request cannot discard it before setup is done).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action

ACTION_NAMES = ("web.setup_code_check", "web.setup_code_discard")
SETUP_DONE = ActionError("初期設定は終わっています", "setup is done: there is an administrator")


def _admin_exists(env: ActionEnv) -> bool:
    from webui.accounts import AccountStore

    return AccountStore(env.ctx.db).admin_exists()


@dataclass(frozen=True)
class CheckArgs:
    entered: str | None = field(default=None, metadata={"max": 64})  # None: only make the code


@action("web.setup_code_check", CheckArgs)
def check(env: ActionEnv, args: CheckArgs) -> dict[str, Any]:
    """Make the code if there is none yet; with `entered`, compare it: {"ok": ..., "locked": ...}."""
    from webui.setup_code import check_setup_code, ensure_setup_code

    if _admin_exists(env):
        raise SETUP_DONE
    keys_dir = env.ctx.paths.keys_dir
    ensure_setup_code(keys_dir)
    if args.entered is None:
        return {"ok": False, "locked": False}
    result = check_setup_code(keys_dir, env.ctx.db, args.entered, env.clock())
    return {"ok": result.ok, "locked": result.locked}


@dataclass(frozen=True)
class DiscardArgs:
    pass


@action("web.setup_code_discard", DiscardArgs)
def discard(env: ActionEnv, args: DiscardArgs) -> dict[str, Any]:
    """Remove the code once an administrator who can sign in exists (it has done its job)."""
    from webui.setup_code import discard_setup_code

    if not _admin_exists(env):
        raise ActionError("初期設定がまだ終わっていません", "setup is not done: the code is still needed")
    discard_setup_code(env.ctx.paths.keys_dir)
    return {}
