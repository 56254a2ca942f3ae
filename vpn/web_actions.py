"""The VPN area's actions for the web UI (appliance.actions): issue a device's config (key pair made here).

Run by the daemon: the new peer goes onto the live WireGuard interface. The private key travels back to the
web UI once, in the answer, to be shown once; it is never stored. Only an administrator may issue another
person's device (the page says so before asking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action
from webui.action_accounts import account_role, require

ACTION_NAMES = ("vpn.provision",)


@dataclass(frozen=True)
class ProvisionArgs:
    user: str
    device: str
    actor: str


@action("vpn.provision", ProvisionArgs)
def provision_device(env: ActionEnv, args: ProvisionArgs) -> dict[str, Any]:
    """Add (or re-issue) a device of a VPN user; the answer holds its client config."""
    from vpn.provision import provision
    from vpn.subsystem import VpnSubsystem

    require(env, args.actor, "vpn.edit")
    if args.user != args.actor and account_role(env, args.actor) != "admin":
        raise ActionError(
            "ほかの方の機器は管理者だけが追加できます", "only an administrator may issue another's device"
        )
    cfg = env.config()
    if cfg is None or not cfg.vpn.enabled:
        raise ActionError("VPN が有効になっていません", "the VPN is not enabled")
    sub = VpnSubsystem(env.ctx)
    issued = provision(env.ctx, cfg, args.user, args.device[:32], iface=sub.interface(sub.render(cfg)))
    return {"conf": issued.conf, "ip4": issued.device.ip4}
