"""The VPN portal's actions (appliance.actions), run by the daemon: what the box is, what a device's state
is, a sign-in and a logout. These four are all the portal may ask for (appliance.actions.server).

The portal is a process without capabilities, database or config (vpn.portal_serve): admitting a tunnel
address into the firewall's sets and cutting its connections needs the daemon, and the sessions, users and
secrets stay where a portal taken over cannot read or change them. It sends what the person typed and the
tunnel address the request came from; the daemon checks the policy, the password and the code itself
(vpn.portal_view.LocalPortal over vpn.sessions.SessionManager), so a portal taken over cannot admit anyone
without that person's password and code. The address is its word: it can sign a device out, and learn the
name of the user of an address it names. The audit entries are the session manager's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action
from vpn.portal_view import LocalPortal
from vpn.sessions import SessionManager

ACTION_NAMES = ("vpn.portal.site", "vpn.portal.view", "vpn.portal.sign_in", "vpn.portal.logout")


@dataclass(frozen=True)
class SiteArgs:
    pass


@dataclass(frozen=True)
class ViewArgs:
    remote: str = field(metadata={"max": 64})  # the tunnel address the request came from


@dataclass(frozen=True)
class SignInArgs:
    remote: str = field(metadata={"max": 64})  # the tunnel address the request came from
    password: str = field(metadata={"max": 256})
    code: str = field(metadata={"max": 16})


@dataclass(frozen=True)
class LogoutArgs:
    remote: str = field(metadata={"max": 64})


def _portal(env: ActionEnv) -> LocalPortal:
    cfg = env.config()
    if cfg is None or not cfg.vpn.enabled:
        raise ActionError("VPN が有効になっていません", "the VPN is not enabled")
    return LocalPortal(SessionManager(env.ctx, lambda: cfg))


@action("vpn.portal.site", SiteArgs)
def site(env: ActionEnv, args: SiteArgs) -> dict[str, Any]:
    """The clinic's name, its time zone and the VPN addresses the portal answers as."""
    return asdict(_portal(env).site())  # PortalSite.from_dict reads it back


@action("vpn.portal.view", ViewArgs)
def view(env: ActionEnv, args: ViewArgs) -> dict[str, Any]:
    """The device at the address: its user's name, its session's end, a cut still being retried."""
    return asdict(_portal(env).view(args.remote))  # PortalView.from_dict reads it back


@action("vpn.portal.sign_in", SignInArgs)
def sign_in(env: ActionEnv, args: SignInArgs) -> dict[str, Any]:
    """A sign-in on the VPN portal: policy, password and code checked here, the address admitted."""
    decision = _portal(env).sign_in(args.remote, args.password, args.code)
    return {"allowed": decision.allowed, "reason": decision.reason, "expires": decision.expires}


@action("vpn.portal.logout", LogoutArgs)
def logout(env: ActionEnv, args: LogoutArgs) -> dict[str, Any]:
    """A logout on the VPN portal: the device's sessions ended and cut; how many ended."""
    return {"ended": _portal(env).logout(args.remote)}
