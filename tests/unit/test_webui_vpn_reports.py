"""VPN page: a maintenance window's work report (作業報告) and a VPN user's tunnel log (接続の記録).

Windows are approved through vpn.windows.WindowStore, tunnel-log rows written by vpn.monitor.record and
connections by vpn.connlog.handle, the functions the real daemon uses; sessions are inserted as the portal
writes them. Strings from the network (endpoints) must come out of the page inert."""

from __future__ import annotations

import time

from appliance.config.load import parse_config
from firewall.nflog import Drop
from tests.webui_fixtures import Box, box_fixture  # noqa: F401
from vpn.connlog import ConnStore, TunnelAddresses, handle
from vpn.ctevents import CtEvent
from vpn.monitor import LogEntry, record
from vpn.windows import WindowStore

HOSTILE = '<script>alert("x")</script>'
TUNNEL_IP = "10.99.0.9"  # in the example clinic's VPN pool


def _window(box: Box, targets: list[str]) -> tuple[int, float]:
    now = time.time()
    w = WindowStore(box.ctx.db).approve(
        "vendor-a", now - 600, now + 3600, "電子カルテの更新作業", targets, "院長"
    )
    return w.id, now


def _session_and_flows(box: Box, window_id: int, now: float, dests: list[tuple[str, int]]) -> None:
    with box.ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO vpn_sessions(user, tunnel_ip, window_id, started, expires, ended, end_reason, remote)"
            " VALUES ('vendor-a', ?, ?, ?, ?, ?, 'logout', ?)",
            (TUNNEL_IP, window_id, now - 500, now + 3000, now - 100, "198.51.100.20"),
        )
    events = []
    for i, (dst, port) in enumerate(dests):
        events += [
            CtEvent("new", now - 300, i, TUNNEL_IP, dst, "tcp", 40000 + i, port),
            CtEvent("destroy", now - 290, i, TUNNEL_IP, dst, "tcp", 40000 + i, port, 204_800 + i, 3_000),
        ]
    refused = [
        Drop(
            now - 280, "mamori vpn refused vpn>lan: ", "wg", "lan", TUNNEL_IP, "192.168.10.20", "tcp", 1, 3389
        )
    ]
    tunnels = TunnelAddresses(
        parse_config(box.ctx.paths.config.read_text(encoding="utf-8")).model, box.ctx.db
    )
    handle(ConnStore(box.ctx.db), tunnels, events, refused)


def _admin(box: Box):
    client = box.client()
    box.login(client, "admin")
    return client


def test_window_report_shows_work_and_calls_out_hosts_outside_the_approval(box: Box) -> None:
    wid, now = _window(box, ["電子カルテ", "<b>bold</b>"])
    _session_and_flows(box, wid, now, [("192.168.10.10", 22), ("192.168.10.30", 445)])
    record(box.ctx, [
        LogEntry(now - 490, "vendor-a", 1, "connect", f"{HOSTILE}:51820"),
        LogEntry(now - 200, "vendor-a", 1, "bytes", "198.51.100.20:51820", 123456, 7890),
        LogEntry(now - 150, "vendor-a", 1, "endpoint", "198.51.100.21:51820", detail=f"{HOSTILE} -> x"),
        LogEntry(now - 100, "vendor-a", 1, "disconnect", "198.51.100.21:51820"),
    ])  # fmt: skip
    client = _admin(box)
    index = client.get("/vpn/").get_data(as_text=True)
    assert f"/vpn/windows/{wid}/report" in index and "作業報告" in index
    r = client.get(f"/vpn/windows/{wid}/report")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "承認された対象以外への接続があります" in page
    assert "vendor-a" in page and "院長" in page and "電子カルテの更新作業" in page
    assert "業者から 409,601 バイト" in page and "業者へ 7,890 バイト" in page  # connections' / tunnel's
    assert "192.168.10.30" in page and "tcp/445" in page and "tcp/22" in page
    assert "送信 204,800 / 受信 3,000 バイト" in page  # each destination with its bytes each way
    assert (
        "ファイアウォールが拒否した接続" in page and page.count('class="refused"') == 1 and "tcp/3389" in page
    )
    assert page.count('class="outside"') == 1  # only the PACS row, not the approved 電子カルテ
    assert "サインアウト" in page and "198.51.100.20" in page
    # network and form strings are inert: escaped by autoescape, never markup
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert " style=" not in page and "<style" not in page  # the CSP forbids inline style


def test_window_report_without_excursions_has_no_warning(box: Box) -> None:
    wid, now = _window(box, ["電子カルテ"])
    _session_and_flows(box, wid, now, [("192.168.10.10", 22)])
    page = _admin(box).get(f"/vpn/windows/{wid}/report").get_data(as_text=True)
    assert "承認された対象以外への接続があります" not in page and "対象内" in page


def test_window_report_of_unknown_window_is_404(box: Box) -> None:
    assert _admin(box).get("/vpn/windows/999/report").status_code == 404


def test_peer_log_is_newest_first_paged_and_bounded(box: Box) -> None:
    t0 = time.time() - 100_000
    record(box.ctx, [LogEntry(t0 + i * 60, "yamada", 1, "bytes", f"203.0.113.{i % 200}:1", i, 0, detail=f"n{i:03d}")
                     for i in range(120)])  # fmt: skip
    record(box.ctx, [LogEntry(t0 + 99_000, "yamada", 1, "endpoint", HOSTILE, detail=f"a -> {HOSTILE}")])
    record(box.ctx, [LogEntry(t0 + 5, "vendor-a", 2, "connect", "198.51.100.99:1", detail="other-user")])
    client = _admin(box)
    assert "/vpn/users/yamada/log" in client.get("/vpn/").get_data(as_text=True)
    first = client.get("/vpn/users/yamada/log").get_data(as_text=True)
    assert "接続元が変わった" in first and "&lt;script&gt;" in first and "<script>alert" not in first
    assert first.index("n119") < first.index("n118")  # newest first
    assert "n071" in first and "n070" not in first  # 50 a page: the endpoint change + n119..n071
    assert "other-user" not in first and "page=2" in first
    last = client.get("/vpn/users/yamada/log?page=3").get_data(as_text=True)
    assert "n020" in last and "n000" in last and "n021" not in last and "page=4" not in last
    assert client.get("/vpn/users/yamada/log?page=100000").status_code == 200  # clamped, not unbounded


def test_peer_log_of_unknown_user_is_404(box: Box) -> None:
    assert _admin(box).get("/vpn/users/nobody/log").status_code == 404
