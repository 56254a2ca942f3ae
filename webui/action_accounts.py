"""Who an action is for: the web UI account it names, looked up by the daemon, with that account's permissions.

The accounts are the web UI's table (webui.accounts); the daemon reads it, never takes a permission set from
the request. Every area's action module (appliance.areas `actions`) checks its account here.
"""

from __future__ import annotations

from appliance.actions.registry import ActionEnv, ActionError


def account_permissions(env: ActionEnv, actor: str) -> frozenset[str]:
    """The permissions of account `actor`; ActionError if there is no such account or it is disabled."""
    from webui.accounts import AccountStore
    from webui.permissions import permissions_of

    account = AccountStore(env.ctx.db).get(actor)
    if account is None or account.disabled:
        raise ActionError(f"アカウント「{actor[:64]}」は使えません", f"account {actor[:64]!r} cannot act")
    return permissions_of(account)


def account_role(env: ActionEnv, actor: str) -> str:
    from webui.accounts import AccountStore

    account = AccountStore(env.ctx.db).get(actor)
    return account.role if account is not None else ""


def require(env: ActionEnv, actor: str, *permissions: str) -> frozenset[str]:
    """The account's permissions, if it holds one of `permissions` (the page checked it too); else refused."""
    held = account_permissions(env, actor)
    if not held & set(permissions):
        raise ActionError(
            "この操作の権限がありません", f"account {actor[:64]!r} lacks {' or '.join(permissions)}"
        )
    return held
