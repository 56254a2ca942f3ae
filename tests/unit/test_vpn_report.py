"""The work report of a maintenance window, built from the box's own connection log (vpn/connlog.py,
written here through the same `handle` the daemon's worker calls) and the tunnel log. The real kernel
path is tests/long/test_vpn_report_lab.py."""

from __future__ import annotations

import time

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from firewall.nflog import Drop
from tests.unit.test_vpn_portal import CFG
from vpn.connlog import ConnStore, TunnelAddresses, handle
from vpn.ctevents import CtEvent
from vpn.keys import generate_keypair
from vpn.monitor import LogEntry, record
from vpn.report import render_text, window_report
from vpn.store import DeviceStore
from vpn.windows import WindowStore

EMR, RECEPTION, PACS = "192.168.10.10", "192.168.10.20", "192.168.10.30"


@pytest.fixture()
def ctx(tmp_path):
    c = Context(Paths(config=tmp_path / "c.yaml", state_dir=tmp_path), Database(tmp_path / "m.db"))
    c.paths.ensure()
    c.db.migrate()
    return c


@pytest.fixture()
def people(ctx):
    """The doctor's and the vendor's devices (tunnel addresses 10.99.0.2 and .3)."""
    store = DeviceStore(ctx.db)
    return [
        store.add(u, "pc", generate_keypair()[1], CFG.vpn.address, CFG.vpn.address6)
        for u in ("yamada", "vendor-a")
    ]


def setup_window(ctx, ven, start: float, end: float) -> int:
    """A window approved just before it started (windows cannot be approved after the fact)."""
    w = WindowStore(ctx.db, clock=lambda: start - 60).approve(
        "vendor-a", start, end, "電子カルテ更新", ["電子カルテ"], "院長"
    )
    with ctx.db.transaction() as conn:
        conn.execute("INSERT INTO vpn_sessions(user, tunnel_ip, window_id, started, expires, ended, end_reason)"
                     " VALUES ('vendor-a', ?, ?, ?, ?, ?, 'window_end')", (ven.ip4, w.id, start, end, end))  # fmt: skip
    return w.id


def conn(
    kind: str, ts: float, src: str, dst: str, sport: int, dport: int = 22, sent: int = 0, received: int = 0
):
    return CtEvent(kind, ts, sport, src, dst, "tcp", sport, dport, sent, received)


def refused(ts: float, src: str, dst: str, dport: int) -> Drop:
    return Drop(ts, "mamori vpn refused vpn>lan: ", "wg", "lan", src, dst, "tcp", 50000, dport)


def test_report_lists_destinations_bytes_outside_and_refused(ctx, people):
    doc, ven = people[0], people[1]
    t0 = time.time() - 3600
    wid = setup_window(ctx, ven, t0, t0 + 1800)
    store, tunnels = ConnStore(ctx.db), TunnelAddresses(CFG, ctx.db)
    v = ven.ip4
    handle(store, tunnels, [
        conn("new", t0 + 60, v, EMR, 40001), conn("destroy", t0 + 120, v, EMR, 40001, sent=204_900, received=3_100),
        conn("new", t0 + 300, v, EMR, 40002), conn("destroy", t0 + 400, v, EMR, 40002, sent=205_100, received=2_900),
        conn("new", t0 + 500, v, PACS, 40003, 445), conn("destroy", t0 + 510, v, PACS, 40003, 445, 1_000, 500),
        conn("new", t0 + 200, doc.ip4, EMR, 40004, 443),  # the doctor at the same time: not the vendor's
        conn("new", t0 - 7200, v, RECEPTION, 40005, 443), conn("destroy", t0 - 7100, v, RECEPTION, 40005, 443, 9, 9),
    ], [refused(t0 + 700, v, RECEPTION, 443), refused(t0 + 701, v, RECEPTION, 443)])  # fmt: skip
    rep = window_report(ctx, CFG, wid)
    assert [(d.dst, d.port, d.count, d.sent, d.received, d.outside) for d in rep.reached] == [
        (EMR, 22, 2, 410_000, 6_000, False),
        (PACS, 445, 1, 1_000, 500, True),
    ]
    emr = rep.reached[0]
    assert (emr.first, emr.last) == (t0 + 60, t0 + 400)
    assert [(d.dst, d.port, d.count) for d in rep.refused] == [(RECEPTION, 443, 2)]
    assert rep.outside_targets == [PACS]
    assert rep.bytes_total == (411_000, 6_500)  # the connections' bytes: the tunnel log has none here
    text = render_text(rep)
    assert "遠隔保守 作業報告" in text and "window_end" in text
    assert f"{EMR} tcp/22 x2" in text and "送信 410,000 / 受信 6,000 バイト" in text
    assert f"{PACS} tcp/445 x1" in text and "!! 承認された対象以外" in text
    assert "ファイアウォールが拒否した接続:" in text and f"{RECEPTION} tcp/443 x2" in text
    assert "承認された対象以外への接続: 192.168.10.30" in text and "IDS" not in text
    en = render_text(rep, lang="en")
    assert "Remote maintenance report" in en and "Refused by the firewall:" in en


def test_a_session_that_moved_data_never_shows_zero_bytes(ctx, people):
    """The old report took bytes only from tunnel records up to the window's close, while the monitor
    writes a tunnel's last bytes when it goes quiet, minutes after the cut: short sessions showed 0 / 0."""
    ven = people[1]
    t0 = time.time() - 3600
    wid = setup_window(ctx, ven, t0, t0 + 40)
    record(ctx, [LogEntry(t0 + 1, "vendor-a", ven.id, "connect", "198.51.100.20:1"),
                 LogEntry(t0 + 40 + 180, "vendor-a", ven.id, "bytes", "198.51.100.20:1", 250_000, 9_000),
                 LogEntry(t0 + 40 + 181, "vendor-a", ven.id, "disconnect", "198.51.100.20:1")])  # fmt: skip
    store, tunnels = ConnStore(ctx.db), TunnelAddresses(CFG, ctx.db)
    handle(store, tunnels, [conn("new", t0 + 5, ven.ip4, "192.168.10.10", 40010)], [])  # still open
    rep = window_report(ctx, CFG, wid)
    assert rep.tunnel_bytes == (250_000, 9_000)
    assert rep.bytes_total == (250_000, 9_000)
    text = render_text(rep)
    assert "0 / 0" not in text and "250,000 / 9,000" in text
    assert "接続中（通信量は切断時に記録）" in text


def test_connections_without_counts_say_so(ctx, people):
    ven = people[1]
    t0 = time.time() - 3600
    wid = setup_window(ctx, ven, t0, t0 + 600)
    store, tunnels = ConnStore(ctx.db), TunnelAddresses(CFG, ctx.db)
    handle(
        store,
        tunnels,
        [conn("new", t0 + 5, ven.ip4, EMR, 40020), conn("destroy", t0 + 9, ven.ip4, EMR, 40020)],
        [],
    )
    text = render_text(window_report(ctx, CFG, wid))
    assert "通信量は記録できませんでした" in text and "送信 0 / 受信 0" not in text


def test_window_without_connections(ctx, people):
    t0 = time.time() - 3600
    wid = setup_window(ctx, people[1], t0, t0 + 600)
    rep = window_report(ctx, CFG, wid)
    assert rep.reached == [] and rep.refused == [] and rep.outside_targets == []
    assert "なし（院内の機器への接続はありませんでした）" in render_text(rep)


def test_the_vendor_is_found_among_much_other_traffic(ctx, people, monkeypatch):
    import vpn.report

    monkeypatch.setattr(vpn.report, "QUERY_MAX", 50)
    ven = people[1]
    t0 = time.time() - 3600
    wid = setup_window(ctx, ven, t0, t0 + 600)
    store, tunnels = ConnStore(ctx.db), TunnelAddresses(CFG, ctx.db)
    others = [conn("new", t0 + 1, people[0].ip4, EMR, 1000 + i, 443) for i in range(200)]  # the doctor's
    mine = [conn("new", t0 + 2, ven.ip4, EMR, 30001), conn("new", t0 + 3, ven.ip4, PACS, 30002)]
    handle(store, tunnels, [*others, *mine], [])
    rep = window_report(ctx, CFG, wid)
    assert [(d.dst, d.port) for d in rep.reached] == [(EMR, 22), (PACS, 22)] and not rep.truncated
    assert "最初の" not in render_text(rep)


def test_the_report_says_when_connections_were_cut_off(ctx, people, monkeypatch):
    import vpn.report

    monkeypatch.setattr(vpn.report, "QUERY_MAX", 50)
    ven = people[1]
    t0 = time.time() - 3600
    wid = setup_window(ctx, ven, t0, t0 + 600)
    handle(ConnStore(ctx.db), TunnelAddresses(CFG, ctx.db),
           [conn("new", t0 + i, ven.ip4, EMR, 20000 + i) for i in range(60)], [])  # fmt: skip
    rep = window_report(ctx, CFG, wid)
    assert rep.truncated and rep.reached[0].count == 50
    assert "最初の 50 件だけ" in render_text(rep)
    assert "Only the first 50 connections" in render_text(rep, lang="en")


def test_monthly_report_shows_each_destination_and_the_refused(ctx, people):
    from appliance.clock import clinic_time
    from reports.gather import gather_snapshot
    from reports.month_data import gather_month, parse_month
    from reports.monthly import context
    from reports.render import render_html

    ven = people[1]
    t0 = time.time() - 3600
    setup_window(ctx, ven, t0, t0 + 600)
    v = ven.ip4
    handle(ConnStore(ctx.db), TunnelAddresses(CFG, ctx.db), [
        conn("new", t0 + 5, v, EMR, 40001), conn("destroy", t0 + 9, v, EMR, 40001, sent=204_900, received=3_100),
        conn("new", t0 + 6, v, PACS, 40002, 445), conn("destroy", t0 + 8, v, PACS, 40002, 445, 100, 50),
    ], [refused(t0 + 7, v, RECEPTION, 3389)])  # fmt: skip
    month = parse_month(clinic_time(t0, "Asia/Tokyo").strftime("%Y-%m"), "Asia/Tokyo")
    now = time.time()
    html = render_html(
        "monthly.html", **context(gather_snapshot(ctx, now), gather_month(ctx, month, CFG), now)
    )
    assert f"{EMR} tcp/22（1回" in html and "送信 204,900 / 受信 3,100 バイト" in html
    assert f"{PACS} tcp/445" in html and "承認された対象以外</b>" in html
    assert (
        f"{RECEPTION} tcp/3389（1回" in html and "侵入検知" not in html.split("実際に接続した機器")[1][:200]
    )
