"""What other areas may ask the update area (metrics/ uses it): the update state as numbers.

Reads only the update directory's files and the update area's own keys in the state database.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.subsystem import Context
from update import actions, stage
from update.box import UpdatePaths, box_info, read_json

STATES = ("idle", "available", "installing", "failed", "rolled-back")


@dataclass(frozen=True)
class UpdateMetrics:
    state: str  # one of STATES
    rollbacks: int  # trial boots that failed their health check and fell back (since this state dir)
    last_check: float | None  # wall time of the last check of the vendor's index
    check_ok: bool | None  # did it end without a refusal


def update_metrics(ctx: Context) -> UpdateMetrics:
    upaths = UpdatePaths.of(ctx.paths)
    box = box_info(upaths)
    trial = (box.boot or {}).get("trial")
    result = read_json(upaths.result)
    if stage.in_progress(upaths):
        state = "installing"
    elif isinstance(trial, dict) and trial.get("outcome") == "rolled-back":
        state = "rolled-back"
    elif result and result.get("ok") is False:
        state = "failed"
    elif stage.current_staged(upaths):
        state = "available"
    else:
        state = "idle"
    check = actions.last_check(ctx)
    return UpdateMetrics(
        state=state,
        rollbacks=int(ctx.db.get_kv(actions.KV_ROLLBACKS) or 0),
        last_check=float(check["at"]) if check else None,
        check_ok=(check.get("outcome") != "refused") if check else None,
    )
