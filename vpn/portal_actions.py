"""The VPN portal's actions (appliance.actions): a sign-in and a logout, run by the daemon.

The portal is a process without capabilities (vpn.portal_serve): it reads the sessions itself, but admitting
a tunnel address into the firewall's sets and cutting its connections needs the daemon. It sends what the
person typed and the tunnel address the request came from; the daemon checks the policy, the password and the
code itself (vpn.sessions.SessionManager, the same code the portal ran in-process before), so a portal taken
over cannot admit anyone without that person's password and code. It can sign a device out: the address is
its word. The audit entries are the session manager's own, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action
from vpn.sessions import SessionManager

ACTION_NAMES = ("vpn.portal.sign_in", "vpn.portal.logout")


@dataclass(frozen=True)
class SignInArgs:
    remote: str = field(metadata={"max": 64})  # the tunnel address the request came from
    password: str = field(metadata={"max": 256})
    code: str = field(metadata={"max": 16})


@dataclass(frozen=True)
class LogoutArgs:
    remote: str = field(metadata={"max": 64})


def _sessions(env: ActionEnv) -> SessionManager:
    cfg = env.config()
    if cfg is None or not cfg.vpn.enabled:
        raise ActionError("VPN が有効になっていません", "the VPN is not enabled")
    return SessionManager(env.ctx, lambda: cfg)


@action("vpn.portal.sign_in", SignInArgs)
def sign_in(env: ActionEnv, args: SignInArgs) -> dict[str, Any]:
    """A sign-in on the VPN portal: policy, password and code checked here, the address admitted."""
    decision = _sessions(env).sign_in(args.remote, args.password, args.code)
    return {"allowed": decision.allowed, "reason": decision.reason, "expires": decision.expires}


@action("vpn.portal.logout", LogoutArgs)
def logout(env: ActionEnv, args: LogoutArgs) -> dict[str, Any]:
    """A logout on the VPN portal: the device's sessions ended and cut; how many ended."""
    return {"ended": len(_sessions(env).logout(args.remote))}
