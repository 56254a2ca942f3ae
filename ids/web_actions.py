"""The IDS area's actions for the web UI (appliance.actions): block or unblock an address by hand; install an
uploaded rules archive.

Run by the daemon: the firewall's sets are the kernel's, the rules and Suricata's reload root's. The address
must parse as an IP address; the account must hold alerts.manage or firewall.edit (the pages that offer it
check the same). An upload is named by the file name the web UI spooled it under (appliance.actions.spool): opened without
following links, a regular file of one link within the size limit, then copied into the daemon's own directory
before Suricata sees it; no path from the request is joined.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action
from appliance.config.types import parse_duration
from appliance.errors import MamoriError
from webui.action_accounts import require

ACTION_NAMES = ("ids.block", "ids.rules_install")


@dataclass(frozen=True)
class BlockArgs:
    ip: str
    actor: str
    unblock: bool = False
    incident_id: int | None = None


@action("ids.block", BlockArgs)
def block(env: ActionEnv, args: BlockArgs) -> dict[str, Any]:
    """Block (or unblock) one address in the firewall's set; audited by ids.response."""
    from ids.response import manual_block, unblock

    require(env, args.actor, "alerts.manage", "firewall.edit")
    try:
        ip = str(ipaddress.ip_address(args.ip))
    except ValueError:
        raise ActionError("IP アドレスではありません", f"not an IP address: {args.ip[:64]!r}") from None
    cfg = env.config()
    if cfg is None:
        raise MamoriError("設定がないため遮断できません", "no config: cannot block", code="unavailable")
    if args.unblock:
        unblock(env.ctx, cfg, ip, args.actor, source="web")
    else:
        timeout_s = parse_duration(cfg.firewall.block_timeout)
        manual_block(env.ctx, cfg, ip, args.actor, timeout_s, incident_id=args.incident_id, source="web")
    return {}


@dataclass(frozen=True)
class RulesArgs:
    actor: str
    upload: str


@action("ids.rules_install", RulesArgs)
def rules_install(env: ActionEnv, args: RulesArgs) -> dict[str, Any]:
    """Test and install an uploaded rules archive (ids.updates via webui.rules_upload.install); one sentence back."""
    from appliance.actions import spool
    from webui import rules_upload

    require(env, args.actor, "ids.rules_update")
    with spool.open_spooled(env.ctx, "rules", args.upload, rules_upload.MAX_UPLOAD) as src:
        cfg = env.config()
        if cfg is None:
            raise ActionError("設定がないためルールを更新できません", "no config: cannot update rules")
        with (
            rules_upload.one_update_at_a_time(env.ctx),
            spool.private_copy(
                src, ".tar.gz", rules_upload.MAX_UPLOAD, rules_upload.upload_dir(env.ctx)
            ) as path,
        ):
            outcome = rules_upload.install(env.ctx, cfg, path, args.actor)
    return {"ok": outcome.ok, "message": outcome.message, "detail": outcome.detail}
