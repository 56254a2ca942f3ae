"""The VPN connection log: conntrack events decoded from real kernel captures (and hostile variants), and
what is recorded from them and from refused-connection NFLOG records. The kernel path (a real tunnel, the
daemon's worker) is tested in tests/long/test_vpn_report_lab.py."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from firewall.nflog import Drop
from tests.unit.test_firewall_helpers import config
from vpn.connlog import REFUSED_MERGE_S, ConnStore, TunnelAddresses, handle
from vpn.ctevents import CtEvent, enable_accounting, split
from vpn.store import DeviceStore

FIXTURE = Path(__file__).parent.parent / "fixtures" / "conntrack" / "events.hex"
T0 = 1_790_000_000.0


def captured() -> list[bytes]:
    lines = FIXTURE.read_text().splitlines()
    return [bytes.fromhex(x) for x in lines if x and not x.startswith("#")]


@pytest.fixture()
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    return c


def test_real_conntrack_events_decode():
    bad: list[str] = []
    events = [ev for data in captured() for ev in split(data, T0, lambda why, _: bad.append(why))]
    assert bad == []
    assert [(e.kind, e.src, e.dst, e.proto, e.dport) for e in events] == [
        ("new", "10.99.0.3", "192.168.10.10", "tcp", 22),
        ("new", "fd4d:616d:6f72::3", "fd00:10::10", "tcp", 22),
        ("destroy", "10.99.0.3", "192.168.10.10", "tcp", 22),
        ("destroy", "fd4d:616d:6f72::3", "fd00:10::10", "tcp", 22),
    ]
    assert events[0].ct_id == events[2].ct_id and events[0].sport == events[2].sport
    assert events[0].bytes_orig == 0  # NEW carries no counts yet
    # 200000 bytes of payload sent, plus headers; a few hundred bytes (ACKs) back
    assert 200_000 < events[2].bytes_orig < 210_000 and 0 < events[2].bytes_reply < 2000
    assert 200_000 < events[3].bytes_orig < 210_000


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:40],  # cut inside the message: netlink length runs past the datagram
        lambda d: d[:16] + d[16:20] + b"\x08\x00\x01\x80\x04\x00",  # tuple attribute cut short
        lambda d: d[:16] + d[16:20] + struct.pack("=HH", 400, 0x8001) + d[24:],  # attribute longer than data
        lambda d: d[:16] + d[16:20],  # no attributes at all
        lambda d: d[:16] + b"\x02",  # short nfgenmsg
    ],
)
def test_hostile_messages_are_counted_not_raised(mangle):
    data = mangle(captured()[2])
    data = struct.pack("=I", min(len(data), struct.unpack_from("=I", data)[0])) + data[4:]
    bad: list[str] = []
    assert split(data, T0, lambda why, _: bad.append(why)) == []
    assert len(bad) == 1


def test_other_message_types_are_ignored():
    data = bytearray(captured()[0])
    data[4:6] = struct.pack("=H", (1 << 8) | 1)  # IPCTNL_MSG_CT_GET: not an event we record
    assert split(bytes(data), T0, lambda *a: pytest.fail("not malformed")) == []


def test_enable_accounting_writes_the_switch(tmp_path):
    switch = tmp_path / "nf_conntrack_acct"
    switch.write_text("0\n")
    assert enable_accounting(switch) and switch.read_text() == "1"
    assert not enable_accounting(tmp_path / "missing" / "x")  # says so, does not raise


def ev(kind: str, ts: float, dst: str = "192.168.10.10", sport: int = 40000, ct_id: int = 7,
       sent: int = 0, received: int = 0, src: str = "10.99.0.3") -> CtEvent:  # fmt: skip
    return CtEvent(kind, ts, ct_id, src, dst, "tcp", sport, 22, sent, received)


def drop(ts: float, dst: str = "192.168.10.20", dport: int = 443, src: str = "10.99.0.3") -> Drop:
    return Drop(ts, "mamori vpn refused vpn>lan: ", "wg", "eth1", src, dst, "tcp", 50000, dport)


@pytest.fixture()
def tunnels(ctx):
    dev = DeviceStore(ctx.db).add(
        "vendor-a", "laptop", "A" * 43 + "=", "10.99.0.1/24", "fd4d:616d:6f72::1/64"
    )
    assert dev.ip4 == "10.99.0.2"
    return TunnelAddresses(config(), ctx.db)


def test_accepted_connection_gets_its_bytes_at_close(ctx, tunnels):
    store = ConnStore(ctx.db)
    src = "10.99.0.2"
    handle(store, tunnels, [ev("new", T0, src=src), ev("new", T0 + 1, sport=40001, ct_id=8, src=src)], [])
    open_now = store.between([src], T0, T0 + 5)
    assert [(c.dport, c.last_ts, c.sent) for c in open_now] == [(22, None, 0), (22, None, 0)]
    assert {c.user for c in open_now} == {"vendor-a"}
    handle(store, tunnels, [ev("destroy", T0 + 30, sent=204_000, received=3_000, src=src)], [])
    first, second = store.between([src], T0, T0 + 60)
    assert (first.first_ts, first.last_ts, first.sent, first.received) == (T0, T0 + 30, 204_000, 3_000)
    assert second.last_ts is None  # the other one is still open
    assert first.seen_open and first.verdict == "accepted"


def test_connection_open_before_the_record_started(ctx, tunnels):
    store = ConnStore(ctx.db)
    handle(store, tunnels, [ev("destroy", T0 + 30, sent=5000, received=100, src="10.99.0.2")], [])
    (c,) = store.between(["10.99.0.2"], T0, T0 + 60)
    assert not c.seen_open and c.sent == 5000 and c.first_ts == c.last_ts == T0 + 30


def test_reconcile_closes_what_closed_while_nobody_listened(ctx, tunnels):
    store = ConnStore(ctx.db)
    src = "10.99.0.2"
    handle(store, tunnels, [ev("new", T0, src=src, ct_id=1, sport=1), ev("new", T0, src=src, ct_id=2, sport=2),
                            ev("new", T0, src=src, ct_id=3, sport=3)], [])  # fmt: skip
    assert store.reconcile({2, 3, 99}, T0 + 100) == 1  # 1 is gone from the kernel: closed, bytes unknown
    one, two, three = store.between([src], T0, T0 + 200)
    assert (one.last_ts, one.sent, two.last_ts, three.last_ts) == (T0 + 100, 0, None, None)
    # 3 closed just before the dump, its DESTROY was waiting in the socket: it fills in that row
    assert store.reconcile({2}, T0 + 101) == 1
    handle(store, tunnels, [ev("destroy", T0 + 99, src=src, ct_id=3, sport=3, sent=7000, received=70)], [])
    rows = store.between([src], T0, T0 + 200)
    assert len(rows) == 3 and (rows[2].last_ts, rows[2].sent, rows[2].received) == (T0 + 99, 7000, 70)


def test_only_tunnel_addresses_through_the_box_are_recorded(ctx, tunnels):
    store = ConnStore(ctx.db)
    n = handle(store, tunnels, [
        ev("new", T0, dst="10.99.0.1"),  # the portal on the box's own VPN address
        ev("new", T0, src="192.168.10.20", dst="192.168.10.10"),  # the clinic's own traffic
        ev("new", T0, src="fd4d:616d:6f72::2", dst="fd00:10::10"),  # IPv6 tunnel address: recorded
    ], [drop(T0, src="192.168.10.30"), Drop(T0, "mamori drop lan>wan policy: ", "", "", "10.99.0.3",
                                             "192.168.10.20", "tcp", 1, 2)])  # fmt: skip
    assert n == 1
    assert [c.src for c in store.between(["10.99.0.1", "192.168.10.20", "fd4d:616d:6f72::2",
                                          "192.168.10.30", "10.99.0.3"], T0, T0)] == ["fd4d:616d:6f72::2"]  # fmt: skip


def test_refused_retries_are_one_attempt(ctx, tunnels):
    store = ConnStore(ctx.db)
    handle(store, tunnels, [], [drop(T0), drop(T0 + 1), drop(T0 + 3), drop(T0 + 2, dport=3389)])
    handle(store, tunnels, [], [drop(T0 + 3 + REFUSED_MERGE_S + 1)])  # a new attempt a while later
    rows = store.between(["10.99.0.3"], T0, T0 + 600)
    assert [(c.verdict, c.dport, c.attempts, c.first_ts, c.last_ts) for c in rows] == [
        ("refused", 443, 3, T0, T0 + 3),
        ("refused", 3389, 1, T0 + 2, T0 + 2),
        ("refused", 443, 1, T0 + 4 + REFUSED_MERGE_S, T0 + 4 + REFUSED_MERGE_S),
    ]


def test_between_selects_by_time_and_address(ctx, tunnels):
    store = ConnStore(ctx.db)
    handle(store, tunnels, [ev("new", T0 - 100, ct_id=1), ev("destroy", T0 - 50, ct_id=1),  # before
                            ev("new", T0 - 10, ct_id=2, sport=2),  # open across the start: included
                            ev("new", T0 + 500, ct_id=3, sport=3),  # after
                            ev("new", T0 + 5, ct_id=4, sport=4, src="10.99.0.4")], [])  # fmt: skip
    assert [c.first_ts for c in store.between(["10.99.0.3"], T0, T0 + 100)] == [T0 - 10]


def test_the_row_cap_keeps_the_newest_and_age_is_left_to_the_coordinator(ctx, tunnels):
    store = ConnStore(ctx.db)
    old = [ev("new", T0 - 3 * 365 * 86400, ct_id=1), ev("destroy", T0 - 3 * 365 * 86400 + 5, ct_id=1)]
    new = [ev("new", T0 - i, ct_id=10 + i, sport=10 + i) for i in reversed(range(5))]  # in time order
    handle(store, tunnels, old + new, [])
    assert store.cap(max_rows=10) == 0  # three years old, but under the cap: vpn/retention.py's to judge
    assert store.cap(max_rows=3) == 3  # the three oldest beyond 3 rows
    assert sorted(c.first_ts for c in store.between(["10.99.0.3"], 0, T0)) == [T0 - 2, T0 - 1, T0]
