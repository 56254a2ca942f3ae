"""Reads `wg show dump` continuously and turns changes into a per-user session log and a few events.

Log kinds: connect (a fresh handshake after silence), disconnect (no handshake for HANDSHAKE_GAP_S),
endpoint (the device's public address changed), bytes (transfer since the last record). Events a person
should look at: two_endpoints (one user connected from two places at once), large_transfer (more than
LARGE_TRANSFER bytes between two records). `changes` is pure so it is tested without a kernel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.audit import audit_log
from appliance.errors import ApplyError
from appliance.retention import keep_newest
from appliance.subsystem import Context
from vpn.store import Device, DeviceStore
from vpn.wg import DumpState, PeerState, WgInterface

log = logging.getLogger(__name__)

HANDSHAKE_GAP_S = 180  # WireGuard re-handshakes every 2 min while traffic flows; 3 min of silence = gone
BYTES_EVERY_S = 60
LARGE_TRANSFER = 2 * 1024**3
EVENT_KINDS = ("two_endpoints", "large_transfer")
# vpn_peer_log is kept `storage.peer_log_days` by the retention coordinator (vpn/retention.py: it pauses
# deletion by age while the clock is not trusted). The monitor worker only keeps a row cap between the
# coordinator's runs, so a flapping peer cannot fill the disk (a bytes record per peer per minute is ~500k
# rows a year for one always-on device).
PEER_LOG_MAX_ROWS = 1_000_000
CAP_EVERY_S = 3600.0


@dataclass(frozen=True)
class LogEntry:
    ts: float
    user: str
    device_id: int
    kind: str
    endpoint: str = ""
    rx: int = 0
    tx: int = 0
    detail: str = ""


@dataclass
class _Track:
    connected: bool = False
    endpoint: str | None = None
    rx: int = 0
    tx: int = 0
    bytes_at: float = 0.0


def _host(endpoint: str | None) -> str:
    return (endpoint or "").rsplit(":", 1)[0].strip("[]")


def changes(
    tracks: dict[str, _Track], state: DumpState, devices: dict[str, Device], now: float,
    multi: dict[str, str] | None = None, flush: bool = False,
) -> list[LogEntry]:  # fmt: skip
    """Compare the live state with what was seen before (`tracks` and `multi`, updated in place).

    `multi` remembers, per user, the places he is connected from when there is more than one, so that
    "two_endpoints" is logged when it starts or changes, not on every poll. `flush` writes the bytes
    moved since the last record now, whatever its age (a monitor that stops must not lose them).
    """
    multi = {} if multi is None else multi
    out: list[LogEntry] = []
    live_from: dict[str, set[str]] = {}
    for key, peer in state.peers.items():
        dev = devices.get(key)
        if dev is None:
            continue  # a peer not in the store (being added right now): seen on the next poll
        t = tracks.setdefault(key, _Track(rx=peer.rx, tx=peer.tx, bytes_at=now))
        fresh = peer.latest_handshake > 0 and now - peer.latest_handshake < HANDSHAKE_GAP_S
        out += _peer_changes(t, peer, dev, fresh, now, flush)
        if fresh and peer.endpoint:
            live_from.setdefault(dev.user, set()).add(_host(peer.endpoint))
    for user, hosts in sorted(live_from.items()):
        where = ",".join(sorted(hosts))
        if len(hosts) > 1 and multi.get(user) != where:
            dev = next(d for d in devices.values() if d.user == user)
            out.append(LogEntry(now, user, dev.id, "two_endpoints", detail=where))
        if len(hosts) > 1:
            multi[user] = where
    for user in [u for u in multi if len(live_from.get(u, ())) < 2]:
        del multi[user]
    for key in [k for k in tracks if k not in state.peers]:
        del tracks[key]
    return out


def seed_tracks(
    tracks: dict[str, _Track], state: DumpState, devices: dict[str, Device],
    last: dict[int, tuple[bool, str]], now: float,
) -> None:  # fmt: skip
    """Start tracking the peers not tracked yet from what the log last said of their device (`last`:
    device id -> (connected, endpoint)), not from nothing.

    Why: the daemon rebuilds its workers whenever a config revision goes live (every apply, every
    rollback) and at every restart. A monitor that started from nothing took every peer with a recent
    handshake for a new connection and logged a "connect" nobody made. Bytes start from the counters as
    they are now: what moved while no monitor ran is not known to this process.
    """
    for key, peer in state.peers.items():
        dev = devices.get(key)
        if key in tracks or dev is None:
            continue
        connected, endpoint = last.get(dev.id, (False, ""))
        tracks[key] = _Track(connected, endpoint or None, peer.rx, peer.tx, now)


def last_states(ctx: Context) -> dict[int, tuple[bool, str]]:
    """Per device, whether its newest connect/endpoint/disconnect record leaves it connected, and where from."""
    with ctx.db.connection() as conn:
        rows = conn.execute(
            "SELECT device_id, kind, endpoint FROM vpn_peer_log WHERE id IN (SELECT MAX(id) FROM vpn_peer_log"
            " WHERE kind IN ('connect', 'endpoint', 'disconnect') GROUP BY device_id)"
        ).fetchall()
    return {r["device_id"]: (r["kind"] != "disconnect", r["endpoint"]) for r in rows}


def _peer_changes(
    t: _Track, peer: PeerState, dev: Device, fresh: bool, now: float, flush: bool = False
) -> list[LogEntry]:
    out: list[LogEntry] = []
    ep = peer.endpoint or ""
    if fresh and not t.connected:
        out.append(LogEntry(now, dev.user, dev.id, "connect", ep, peer.rx, peer.tx))
    elif fresh and t.endpoint and peer.endpoint and peer.endpoint != t.endpoint:
        out.append(LogEntry(now, dev.user, dev.id, "endpoint", ep, detail=f"{t.endpoint} -> {ep}"))
    drx, dtx = max(0, peer.rx - t.rx), max(0, peer.tx - t.tx)
    if (drx or dtx) and (now - t.bytes_at >= BYTES_EVERY_S or not fresh or flush):
        out.append(LogEntry(now, dev.user, dev.id, "bytes", ep, drx, dtx))
        if drx + dtx > LARGE_TRANSFER:
            out.append(LogEntry(now, dev.user, dev.id, "large_transfer", ep, drx, dtx))
        t.rx, t.tx, t.bytes_at = peer.rx, peer.tx, now
    if t.connected and not fresh:
        out.append(LogEntry(now, dev.user, dev.id, "disconnect", ep))
    t.connected, t.endpoint = fresh, peer.endpoint or t.endpoint
    return out


def record(ctx: Context, entries: list[LogEntry]) -> None:
    if not entries:
        return
    with ctx.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO vpn_peer_log(ts, user, device_id, kind, endpoint, rx, tx, detail) VALUES (?,?,?,?,?,?,?,?)",
            [(e.ts, e.user, e.device_id, e.kind, e.endpoint, e.rx, e.tx, e.detail) for e in entries],
        )
    events = [e for e in entries if e.kind in EVENT_KINDS]
    audit = audit_log(ctx) if events else None
    for e in events:  # what a person should look at also goes to the audit log the web UI shows
        log.warning("vpn event %s for %s: %s", e.kind, e.user, e.detail or f"{e.rx + e.tx} bytes")
        audit.record("mamori", f"vpn.event.{e.kind}", {"user": e.user, "device": e.device_id, "detail": e.detail,
                                                       "rx": e.rx, "tx": e.tx}, source="vpn")  # fmt: skip


def cap_peer_log(ctx: Context, max_rows: int = PEER_LOG_MAX_ROWS) -> int:
    """Delete the oldest records beyond `max_rows`; returns how many went. Age is the coordinator's."""
    gone = keep_newest(ctx.db, "vpn_peer_log", max_rows)
    if gone:
        log.info("vpn peer log: %d oldest record(s) deleted (at most %d rows)", gone, max_rows)
    return gone


class MonitorWorker:
    """Daemon worker: polls the interface every `interval` seconds while it exists, and caps the tunnel
    log's rows every CAP_EVERY_S (also at start)."""

    name = "vpn-monitor"

    def __init__(self, ctx: Context, iface: WgInterface, interval: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.ctx, self.iface, self.interval, self.clock = ctx, iface, interval, clock
        self.tracks: dict[str, _Track] = {}
        self.multi: dict[str, str] = {}
        self.capped_at: float | None = None

    def poll(self, flush: bool = False) -> list[LogEntry]:
        if not self.iface.exists():
            return []
        return self.step(self.iface.dump(), flush)

    def step(self, state: DumpState, flush: bool = False) -> list[LogEntry]:
        """One look at the interface's state: log what changed since the last one (`flush`: see changes)."""
        devices = {d.public_key: d for d in DeviceStore(self.ctx.db).active()}
        now = self.clock()
        if any(k in devices and k not in self.tracks for k in state.peers):
            seed_tracks(self.tracks, state, devices, last_states(self.ctx), now)
        entries = changes(self.tracks, state, devices, now, self.multi, flush)
        record(self.ctx, entries)
        return entries

    def maintain(self) -> int:
        now = time.monotonic()  # an interval: a step of the wall clock must not make it run early
        if self.capped_at is not None and now - self.capped_at < CAP_EVERY_S:
            return 0
        self.capped_at = now
        return cap_peer_log(self.ctx)

    def run(self, stop: threading.Event) -> None:
        self.maintain()
        while not stop.wait(self.interval):
            self.poll()
            self.maintain()
        # Stopped (a new config revision rebuilds the workers, or the daemon stops): the bytes since the
        # last record are written now; the next monitor counts from the counters as it finds them.
        try:
            self.poll(flush=True)
        except ApplyError as exc:
            log.warning("vpn monitor: last bytes not recorded: %s", exc.text("en"))


def peer_log(ctx: Context, user: str | None = None, since: float = 0.0, limit: int = 500) -> list[LogEntry]:
    sql = "SELECT * FROM vpn_peer_log WHERE ts >= ?"
    args: list[object] = [since]
    if user is not None:
        sql += " AND user = ?"
        args.append(user)
    with ctx.db.connection() as conn:
        rows = conn.execute(sql + " ORDER BY ts DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
    return [LogEntry(r["ts"], r["user"], r["device_id"], r["kind"], r["endpoint"], r["rx"], r["tx"], r["detail"])
            for r in rows]  # fmt: skip
