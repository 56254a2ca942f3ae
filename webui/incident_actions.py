"""Changes the alert pages make: an incident's state, and blocking / unblocking its source address.

The incident state is a column of the IDS area's table (ids_incidents.state: 未対応 / 確認済み / 解決済み);
the web UI sets it with one UPDATE until the IDS area offers a function for it. Blocking goes through
the firewall area's blocked-address sets; when that module is not in this build the page says so.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from appliance.errors import MamoriError, NotFoundError
from appliance.storage import Database
from appliance.subsystem import Context
from webui.sources import STATES

log = logging.getLogger(__name__)


def set_state(db: Database, incident_id: int, state: str) -> None:
    if state not in STATES:
        raise MamoriError(f"状態「{state}」はありません", f"unknown state {state!r}")
    with db.transaction() as conn:
        cur = conn.execute("UPDATE ids_incidents SET state = ? WHERE id = ?", (state, incident_id))
        if cur.rowcount != 1:
            raise NotFoundError(f"アラート {incident_id} はありません", f"no incident {incident_id}")


def _sets_module() -> Any | None:
    try:
        module = importlib.import_module("firewall.sets")
    except ModuleNotFoundError:
        return None
    if callable(getattr(module, "block", None)) and callable(getattr(module, "unblock", None)):
        return module
    return None


def blocking_available() -> bool:
    return _sets_module() is not None


def is_blocked(ip: str) -> bool:
    module = _sets_module()
    checker = getattr(module, "is_blocked", None) if module else None
    return bool(checker and checker(ip))


def block(ctx: Context, incident: dict[str, Any], unblock: bool, actor: str) -> None:
    module = _sets_module()
    if module is None:
        raise MamoriError(
            "遮断の機能はこの版ではまだ利用できません",
            "blocking is not available in this build",
            code="unavailable",
        )
    if unblock:
        module.unblock(ctx, incident["src_ip"], actor=actor)
    else:
        module.block(ctx, incident["src_ip"], reason=f"incident {incident['id']}", actor=actor)
