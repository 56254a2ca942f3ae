"""Retention of the firewall's growing tables, called by the coordinator (appliance.retention).

- fw_drops: older than `storage.drops_days` (the drop log worker also keeps only its newest rows);
- fw_history (block/unblock/quarantine of an address) and fw_device_events ("new device"): older than
  `storage.records_days` — they are the clinic's record of what was blocked and which devices appeared.
Over the firewall's share of the budget, the oldest drops go first, then device events, then history.
Not pruned: fw_entries (why an address is in a live set; bounded by the sets) and fw_devices (the
inventory, one row per device).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.retention import delete_older, shrink
from appliance.storage import Database

if TYPE_CHECKING:
    from appliance.retention import Policy

TABLES = ["fw_drops", "fw_history", "fw_device_events", "fw_entries", "fw_devices"]


def retain(db: Database, policy: Policy) -> dict[str, int]:
    deleted = {
        "fw_drops": delete_older(db, "fw_drops", "ts", policy.cutoff("drops")),
        "fw_history": delete_older(db, "fw_history", "ts", policy.cutoff("records")),
        "fw_device_events": delete_older(db, "fw_device_events", "ts", policy.cutoff("records")),
    }
    for table, n in shrink(
        db, ["fw_drops", "fw_device_events", "fw_history"], TABLES, policy.max_bytes
    ).items():
        deleted[table] += n
    return deleted
