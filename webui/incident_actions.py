"""Changes the alert pages make, through the IDS area's own functions: an incident's state
(ids.incidents.set_state, which audits), and blocking / unblocking its source address
(ids.response.manual_block / unblock, which go through firewall.sets and audit).

Blocking touches the kernel's nftables sets of the namespace the server runs in, so it is offered only
by an app built with the real engines (production, the lab); an app built with `subsystems=[]` (unit
tests: a box with no engines) says the function is not available rather than touching the host.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from appliance.config.types import parse_duration
from appliance.errors import MamoriError
from appliance.storage import Database
from appliance.subsystem import Context
from webui import core, sources

log = logging.getLogger(__name__)


def set_state(db: Database, incident_id: int, state: str, actor: str) -> None:
    from ids.incidents import set_state as ids_set_state

    ids_set_state(db, incident_id, state, actor, source="web")


def blocking_available() -> bool:
    if current_app.config.get("MAMORI_SUBSYSTEMS") is not None:
        return False
    try:
        import firewall.sets  # noqa: F401
        import ids.response  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def is_blocked(db: Database, ip: str, now: float) -> bool:
    return sources.is_blocked(db, ip, now)


def block(ctx: Context, incident: dict[str, Any], unblock: bool, actor: str) -> None:
    if not blocking_available():
        raise MamoriError(
            "遮断の機能はこの版ではまだ利用できません",
            "blocking is not available in this build",
            code="unavailable",
        )
    from ids.response import manual_block
    from ids.response import unblock as ids_unblock

    cfg = core.live_config()
    if cfg is None:
        raise MamoriError("設定がないため遮断できません", "no config: cannot block", code="unavailable")
    if unblock:
        ids_unblock(ctx, cfg, incident["src_ip"], actor, source="web")
    else:
        timeout_s = parse_duration(cfg.firewall.block_timeout)
        manual_block(ctx, cfg, incident["src_ip"], actor, timeout_s, incident_id=incident["id"], source="web")
