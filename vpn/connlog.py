"""The box's own record of what each VPN user's tunnel opened through it, whatever the IDS settings.

MHLW guideline 6.0 asks that remote maintenance be logged and checked against the approved work. Two
sources, both in the box's own network namespace:
- conntrack events (vpn/ctevents.py). The kernel confirms a connection, and sends its NEW event, only
  after its first packet passed the whole forward path, so every NEW event from a tunnel address to
  anything but the box itself is a connection the firewall accepted. The DESTROY event carries the bytes
  each way (the worker switches nf_conntrack_acct on). Ending a session deletes the tunnel address's
  conntrack entries (vpn/gate.py), so every connection of a window is closed, with its bytes, by the time
  the window is.
- the firewall's NFLOG group VPN_LOG_GROUP: the first packet of each vpn -> * connection it refuses
  (firewall/render.py). Repeats of one attempt (TCP retries) within REFUSED_MERGE_S are one row.

Non-goals: what was said inside a connection (no payload is read), and traffic to the box itself (the
portal): that is in the session and audit logs. Kept as long as the other records of remote access
(`storage.records_days`, by the retention coordinator, vpn/retention.py, which pauses deletion by age while
the clock is not trusted and keeps the VPN within its share of the disk budget); the worker itself only
caps the rows at MAX_ROWS between the coordinator's runs, which no clock can make it do early.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from appliance import clock as wall_clock
from appliance.config.model import MamoriConfig
from appliance.retention import keep_newest
from appliance.storage import Database
from appliance.subsystem import Context
from firewall.nflog import Drop, NflogReader
from firewall.render import VPN_LOG_GROUP
from vpn.ctevents import CtEvent, CtEventReader, enable_accounting, live_ids
from vpn.store import DeviceStore

log = logging.getLogger(__name__)

MAX_ROWS = 1_000_000
CAP_EVERY_S = 3600.0
REFUSED_MERGE_S = 60.0
QUERY_MAX = 20_000
USERS_REFRESH_S = 5.0


@dataclass(frozen=True)
class Conn:
    """One connection (accepted) or one refused attempt from a tunnel address."""

    id: int
    first_ts: float  # opened / first attempt
    last_ts: float | None  # closed / last attempt; None while still open
    user: str
    src: str
    dst: str
    proto: str
    dport: int | None
    verdict: str  # "accepted" | "refused"
    sent: int  # bytes from the tunnel address (the vendor's side)
    received: int  # bytes back to it
    attempts: int
    seen_open: bool  # False: opened before the record started (daemon restart); first_ts is its close


def _conn(r) -> Conn:  # type: ignore[no-untyped-def]
    return Conn(r["id"], r["first_ts"], r["last_ts"], r["user"], r["src"], r["dst"], r["proto"], r["dport"],
                r["verdict"], r["sent"], r["received"], r["attempts"], bool(r["seen_open"]))  # fmt: skip


class ConnStore:
    """Writes and reads vpn_conn_log; `user` is who held the tunnel address at the time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def opened(self, ev: CtEvent, user: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO vpn_conn_log(first_ts, user, src, dst, proto, sport, dport, verdict, ct_id)"
                " VALUES (?,?,?,?,?,?,?, 'accepted', ?)",
                (ev.ts, user, ev.src, ev.dst, ev.proto, ev.sport, ev.dport, ev.ct_id),
            )

    def closed(self, ev: CtEvent, user: str) -> None:
        """The bytes at close; a connection opened before the record started gets a row of its own."""
        with self.db.transaction() as conn:
            done = conn.execute(
                # an open row, or one `reconcile` closed without bytes while this event waited in the socket
                "UPDATE vpn_conn_log SET last_ts = ?, sent = ?, received = ? WHERE id = (SELECT id FROM"
                " vpn_conn_log WHERE ct_id IS ? AND (last_ts IS NULL OR sent + received = 0) AND src = ?"
                " AND dst = ? AND proto = ? AND sport IS ? AND dport IS ? AND verdict = 'accepted'"
                " ORDER BY last_ts IS NULL DESC, id DESC LIMIT 1)",
                (
                    ev.ts,
                    ev.bytes_orig,
                    ev.bytes_reply,
                    ev.ct_id,
                    ev.src,
                    ev.dst,
                    ev.proto,
                    ev.sport,
                    ev.dport,
                ),
            ).rowcount
            if not done:
                conn.execute(
                    "INSERT INTO vpn_conn_log(first_ts, last_ts, user, src, dst, proto, sport, dport, verdict,"
                    " sent, received, seen_open, ct_id) VALUES (?,?,?,?,?,?,?,?, 'accepted', ?,?, 0, ?)",
                    (ev.ts, ev.ts, user, ev.src, ev.dst, ev.proto, ev.sport, ev.dport, ev.bytes_orig,
                     ev.bytes_reply, ev.ct_id),
                )  # fmt: skip

    def reconcile(self, live: set[int], now: float) -> int:
        """Close the open rows whose connection the kernel no longer tracks: their DESTROY came while no
        worker listened (the daemon restarted, or rebuilt its workers for a new config revision). Their
        bytes stay unknown (0, which the report shows as not recorded, never as "0 bytes")."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, ct_id FROM vpn_conn_log WHERE last_ts IS NULL AND verdict = 'accepted'"
            ).fetchall()
            gone = [r["id"] for r in rows if r["ct_id"] not in live]
            conn.executemany("UPDATE vpn_conn_log SET last_ts = ? WHERE id = ?", [(now, i) for i in gone])
        if gone:
            log.info("vpn connection log: %d connection(s) closed while no one listened", len(gone))
        return len(gone)

    def refused(self, d: Drop, user: str) -> None:
        with self.db.transaction() as conn:
            merged = conn.execute(
                "UPDATE vpn_conn_log SET last_ts = ?, attempts = attempts + 1 WHERE id = (SELECT id FROM"
                " vpn_conn_log WHERE verdict = 'refused' AND src = ? AND dst = ? AND proto = ? AND dport IS ?"
                " AND last_ts >= ? ORDER BY id DESC LIMIT 1)",
                (d.ts, d.src, d.dst, d.proto, d.dport, d.ts - REFUSED_MERGE_S),
            ).rowcount
            if not merged:
                conn.execute(
                    "INSERT INTO vpn_conn_log(first_ts, last_ts, user, src, dst, proto, sport, dport, verdict)"
                    " VALUES (?,?,?,?,?,?,?,?, 'refused')",
                    (d.ts, d.ts, user, d.src, d.dst, d.proto, d.sport, d.dport),
                )

    def between(self, srcs: Iterable[str], since: float, until: float, limit: int = QUERY_MAX) -> list[Conn]:
        """Connections of the tunnel addresses `srcs` that were open (or attempted) between the two times,
        oldest first, at most `limit` (the caller asks for one more to tell that there were more)."""
        addrs = sorted(set(srcs))
        if not addrs:
            return []
        marks = ",".join("?" * len(addrs))
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT * FROM vpn_conn_log WHERE src IN ({marks}) AND first_ts <= ?"
                " AND (last_ts IS NULL OR last_ts >= ?) ORDER BY first_ts, id LIMIT ?",
                (*addrs, until, since, limit),
            ).fetchall()
        return [_conn(r) for r in rows]

    def cap(self, max_rows: int = MAX_ROWS) -> int:
        """Delete the oldest rows beyond `max_rows` (ids grow with time); returns how many went. Age is
        the retention coordinator's (vpn/retention.py)."""
        gone = keep_newest(self.db, "vpn_conn_log", max_rows)
        if gone:
            log.info("vpn connection log: %d oldest record(s) deleted (at most %d rows)", gone, max_rows)
        return gone


class TunnelAddresses:
    """Which addresses are tunnel addresses (the VPN pool, not the box's own) and whose they are."""

    def __init__(self, cfg: MamoriConfig, db: Database, clock: Callable[[], float] = wall_clock.monotonic):
        addrs = [a for a in (cfg.vpn.address, cfg.vpn.address6) if a]
        self.pools = [ipaddress.ip_interface(a).network for a in addrs]
        self.box = {str(ipaddress.ip_interface(a).ip) for a in addrs}
        self.db, self.clock = db, clock
        self.users: dict[str, str] = {}
        self.loaded_at: float | None = None

    def ours(self, src: str, dst: str) -> bool:
        """From a tunnel address through the box (not to the box's own VPN address: that is the portal)."""
        try:
            ip = ipaddress.ip_address(src)
        except ValueError:
            return False
        return dst not in self.box and src not in self.box and any(ip in net for net in self.pools)

    def user(self, ip: str) -> str:
        if ip not in self.users and (
            self.loaded_at is None or self.clock() - self.loaded_at > USERS_REFRESH_S
        ):
            self.loaded_at = self.clock()
            users: dict[str, str] = {}
            for d in sorted(DeviceStore(self.db).all(), key=lambda d: (d.active, d.id)):  # active ones win
                users[d.ip4] = d.user
                if d.ip6:
                    users[d.ip6] = d.user
            self.users = users
        return self.users.get(ip, "")


def handle(store: ConnStore, tunnels: TunnelAddresses, events: list[CtEvent], drops: list[Drop]) -> int:
    """Record the events of tunnel addresses; returns how many were recorded."""
    n = 0
    for ev in events:
        if not tunnels.ours(ev.src, ev.dst):
            continue
        if ev.kind == "new":
            store.opened(ev, tunnels.user(ev.src))
        else:
            store.closed(ev, tunnels.user(ev.src))
        n += 1
    for d in drops:
        if tunnels.ours(d.src, d.dst) and d.prefix.startswith("mamori vpn refused"):
            store.refused(d, tunnels.user(d.src))
            n += 1
    return n


class ConnLogWorker:
    """Daemon worker: listens to conntrack events and to the refused-connection NFLOG group, records the
    tunnel addresses' connections, caps the rows every CAP_EVERY_S (also at start)."""

    name = "vpn-connlog"

    def __init__(self, ctx: Context, cfg: MamoriConfig, clock: Callable[[], float] = wall_clock.wall) -> None:
        self.ctx, self.clock = ctx, clock
        self.store = ConnStore(ctx.db)
        self.tunnels = TunnelAddresses(cfg, ctx.db)
        self.capped_at: float | None = None

    def maintain(self) -> int:
        now = wall_clock.monotonic()  # an interval: a step of the wall clock must not make it run early
        if self.capped_at is not None and now - self.capped_at < CAP_EVERY_S:
            return 0
        self.capped_at = now
        return self.store.cap()

    def run(self, stop: threading.Event) -> None:
        enable_accounting()
        self.maintain()
        ct = CtEventReader(self.clock)  # listening first: a connection closing from now on is seen
        live = live_ids()
        if live is not None:
            self.store.reconcile(live, self.clock())
        refused: NflogReader | None = None
        try:
            try:
                refused = NflogReader(VPN_LOG_GROUP)
            except OSError as exc:  # another listener on the group: accepted connections are still recorded
                log.error("vpn connection log: refused attempts not recorded (NFLOG group %d: %s)",
                          VPN_LOG_GROUP, exc)  # fmt: skip
            socks = [ct.sock] + ([refused.sock] if refused else [])
            while not stop.is_set():
                ready, _, _ = select.select(socks, [], [], 1.0)
                events = ct.read(0.01) if ct.sock in ready else []
                drops = refused.read(0.01) if refused and refused.sock in ready else []
                drops = [replace(d, ts=self.clock()) for d in drops]  # one clock for both kinds of record
                if events or drops:
                    handle(self.store, self.tunnels, events, drops)
                self.maintain()
        finally:
            ct.close()
            if refused:
                refused.close()
