"""Retention of the VPN's growing tables, called by the coordinator (appliance.retention).

- vpn_peer_log (connects, endpoints, bytes): older than `storage.peer_log_days` (the monitor worker only
  caps its rows between runs);
- vpn_conn_log (what each tunnel opened, and what it was refused): older than `storage.records_days`, by
  the time its last packet was seen (the connection-log worker only caps its rows between runs);
- vpn_sessions that ended and vpn_windows that ended, older than `storage.records_days`: who reached the
  clinic remotely, when and why (MHLW guideline: remote access is logged); an open session or a window
  still to come is never touched.
Over the VPN's share of the budget the peer log shrinks first, then the connection log (sessions and
windows are evidence).
Never pruned: vpn_devices (a revoked device is the record of which key was valid when), vpn_credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.retention import delete_older, shrink
from appliance.storage import Database

if TYPE_CHECKING:
    from appliance.retention import Policy

TABLES = ["vpn_peer_log", "vpn_conn_log", "vpn_sessions", "vpn_windows", "vpn_devices", "vpn_credentials"]


def retain(db: Database, policy: Policy) -> dict[str, int]:
    records = policy.cutoff("records")
    deleted = {
        "vpn_peer_log": delete_older(db, "vpn_peer_log", "ts", policy.cutoff("peer_log")),
        "vpn_conn_log": delete_older(db, "vpn_conn_log", "COALESCE(last_ts, first_ts)", records),
        "vpn_sessions": delete_older(db, "vpn_sessions", "ended", records, where="ended IS NOT NULL"),
        "vpn_windows": delete_older(db, "vpn_windows", "ends", records),
    }
    for table, n in shrink(db, ["vpn_peer_log", "vpn_conn_log"], TABLES, policy.max_bytes).items():
        deleted[table] += n
    return deleted
