"""Plain values about remote access for other areas: counts for the metrics, rows for the web UI and reports.

Sign-in failures are counted from the audit log, where every refused sign-in is recorded with its reason
(vpn/sessions.py `vpn.signin.refused`): the log is kept five years, so the count only grows and serves
as a Prometheus counter. Reasons: bad (wrong password or code), locked, unknown (no credentials),
disabled, unknown_device, no_window, outside_hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.queries import audit_count_by
from appliance.storage import Database

SIGNIN_REFUSED = "vpn.signin.refused"
REASONS: tuple[str, ...] = (
    "bad",
    "locked",
    "unknown",
    "disabled",
    "unknown_device",
    "no_window",
    "outside_hours",
)


@dataclass(frozen=True)
class AccessCounts:
    peers: int  # devices with a valid (not revoked) WireGuard key
    sessions_open: int  # signed-in sessions not ended nor expired
    vendor_windows_open: int  # maintenance windows approved by the clinic and open now


def access_counts(db: Database, now: float) -> AccessCounts:
    with db.connection() as conn:
        peers = conn.execute("SELECT COUNT(*) FROM vpn_devices WHERE revoked IS NULL").fetchone()[0]
        sessions = conn.execute(
            "SELECT COUNT(*) FROM vpn_sessions WHERE ended IS NULL AND revoke_pending = '' AND expires > ?",
            (now,),
        ).fetchone()[0]
        windows = conn.execute(  # the same test as vpn.windows.Window.open_at
            "SELECT COUNT(*) FROM vpn_windows WHERE cancelled IS NULL AND closed IS NULL AND starts <= ? AND ends > ?",
            (now, now),
        ).fetchone()[0]
    return AccessCounts(int(peers), int(sessions), int(windows))


def signin_failures(db: Database) -> dict[str, int]:
    """Refused VPN sign-ins by reason (every known reason present; anything else as "other")."""
    out = dict.fromkeys((*REASONS, "other"), 0)
    for reason, count in audit_count_by(db, SIGNIN_REFUSED, "reason").items():
        out[reason if reason in REASONS else "other"] += count
    return out


# -- sessions, windows and devices for the web UI and the monthly report ------------------------------------
# Rows are plain dicts of the VPN area's columns (vpn.schema). The web UI and the reports ask here rather
# than reading vpn_* themselves, so a change of those tables is made in this area alone.


def sessions_open(db: Database, now: float, limit: int = 100) -> list[dict[str, Any]]:
    """Signed-in sessions not ended and not run out, newest first."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM vpn_sessions WHERE ended IS NULL AND expires > ? ORDER BY started DESC LIMIT ?",
            (now, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def sessions_recent(db: Database, limit: int = 30) -> list[dict[str, Any]]:
    """The latest sessions, ended ones included, each with `end_reason_ja` (接続中 while open)."""
    from vpn.sessions import END_REASON_JA

    with db.connection() as conn:
        rows = [
            dict(r) for r in conn.execute("SELECT * FROM vpn_sessions ORDER BY id DESC LIMIT ?", (limit,))
        ]
    for r in rows:
        r["end_reason_ja"] = END_REASON_JA.get(r["end_reason"], r["end_reason"]) if r["ended"] else "接続中"
    return rows


def sessions_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Sessions alive at some time in [start, end), by user and start."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM vpn_sessions WHERE started < ? AND COALESCE(ended, expires) >= ? ORDER BY user, started",
            (end, start),
        ).fetchall()
    return [dict(r) for r in rows]


def sessions_of_window(db: Database, window_id: int) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM vpn_sessions WHERE window_id = ? ORDER BY started", (window_id,)
        ).fetchall()
    return [dict(r) for r in rows]


def volumes_between(db: Database, start: float, end: float) -> dict[str, tuple[int, int]]:
    """Bytes (received, sent) per user in [start, end): the tunnel monitor's "bytes" records (deltas)."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT user, SUM(rx), SUM(tx) FROM vpn_peer_log WHERE kind = 'bytes' AND ts >= ? AND ts < ? GROUP BY user",
            (start, end),
        ).fetchall()
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in rows}


def windows_ahead(db: Database, now: float, limit: int = 100) -> list[dict[str, Any]]:
    """Maintenance windows not cancelled that have not ended yet, soonest first."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM vpn_windows WHERE cancelled IS NULL AND ends > ? ORDER BY starts LIMIT ?",
            (now, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def windows_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    """Maintenance windows overlapping [start, end) (cancelled ones included), by start."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM vpn_windows WHERE starts < ? AND ends >= ? ORDER BY starts", (end, start)
        ).fetchall()
    return [dict(r) for r in rows]


def devices(db: Database, limit: int = 1000) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute("SELECT * FROM vpn_devices ORDER BY user, created LIMIT ?", (limit,)).fetchall()
    return [dict(r) for r in rows]


def devices_created_between(db: Database, start: float, end: float) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT user, device, ip4, created, revoked FROM vpn_devices WHERE created >= ? AND created < ?"
            " ORDER BY created",
            (start, end),
        ).fetchall()
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class UserUse:
    """What the VPN area knows of one user beyond the config (for the security checklist)."""

    devices: int  # devices with a valid key
    first_device: float | None  # when the first device was added
    has_credentials: bool  # a password and TOTP were set
    credentials_disabled: bool | None  # None: no credentials
    last_session: float | None


def user_use(db: Database) -> dict[str, UserUse]:
    """Per user name that has any record (devices, credentials or sessions)."""
    with db.connection() as conn:
        devs = {r[0]: (int(r[1] or 0), r[2]) for r in conn.execute(
            "SELECT user, SUM(revoked IS NULL), MIN(created) FROM vpn_devices GROUP BY user")}  # fmt: skip
        creds = {r[0]: bool(r[1]) for r in conn.execute("SELECT user, disabled FROM vpn_credentials")}
        last = {r[0]: r[1] for r in conn.execute("SELECT user, MAX(started) FROM vpn_sessions GROUP BY user")}
    return {
        name: UserUse(
            devices=devs.get(name, (0, None))[0],
            first_device=devs.get(name, (0, None))[1],
            has_credentials=name in creds,
            credentials_disabled=creds.get(name),
            last_session=last.get(name),
        )
        for name in set(devs) | set(creds) | set(last)
    }


def reach(ctx: Any, cfg: Any) -> Any:
    """Whether doctors can reach the box from outside, per family and through the relay (vpn/reach.py):
    a ReachStatus read from the VPN area's own table (`vpn_reach`), for the web UI's VPN page."""
    from vpn.reach import status

    return status(ctx, cfg)


def ddns_lines(ctx: Any, cfg: Any) -> list[tuple[str, bool]]:
    """The box's IPv6 name for the VPN page (vpn/ddns_worker.py): (sentence in Japanese, is a problem);
    empty when the box does not update a name."""
    if cfg.vpn.ddns is None:
        return []
    from vpn.ddns_worker import load_state

    state = load_state(ctx)
    return [
        (line, line.startswith("IPv6 の名前を更新できていません"))
        for line in state.lines(cfg.clinic.timezone)
    ]
