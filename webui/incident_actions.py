"""Changes the alert pages make, through the IDS area's own functions: an incident's state
(ids.incidents.set_state, which audits), and blocking / unblocking its source address
(the daemon's action `ids.block`: ids.response.manual_block / unblock, which go through firewall.sets and
audit).

Blocking touches the kernel's nftables sets of the namespace the server runs in, so it is offered only
by an app built with the real engines (production, the lab); an app built with `subsystems=[]` (unit
tests: a box with no engines) says the function is not available rather than touching the host.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from appliance.errors import MamoriError
from appliance.storage import Database
from appliance.subsystem import Context
from webui import actions, sources

log = logging.getLogger(__name__)


def set_state(db: Database, incident_id: int, state: str, actor: str) -> None:
    from ids.incidents import set_state as ids_set_state

    ids_set_state(db, incident_id, state, actor, source="web")


def blocking_available() -> bool:
    """Blocking changes the kernel's sets: not in an app built with test subsystems (create_app's)."""
    return current_app.config.get("MAMORI_SUBSYSTEMS") is None


def is_blocked(db: Database, ip: str, now: float) -> bool:
    return sources.is_blocked(db, ip, now)


def block(ctx: Context, incident: dict[str, Any], unblock: bool, actor: str) -> None:
    if not blocking_available():
        raise MamoriError(
            "遮断の機能はこの版ではまだ利用できません",
            "blocking is not available in this build",
            code="unavailable",
        )
    # The daemon changes the set (ids.web_actions): this process may not touch the kernel.
    actions.call("ids.block", ip=incident["src_ip"], actor=actor, unblock=unblock, incident_id=incident["id"])
