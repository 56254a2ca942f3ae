"""Live sets with real packets in the lab clinic: block stops a live flow, unblock, timeout, quarantine."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.errors import ApplyError
from tests.integration.test_firewall_helpers import clinic_lab, in_ns, sets_call, tcp_ok, wait_until

pytestmark = pytest.mark.integration
SERVER, RECEPTION, BOX_LAN = "198.51.100.10", "192.168.10.20", "192.168.10.1"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    with clinic_lab(str(tmp_path_factory.mktemp("fwsets"))) as lab:
        yield lab


def _call(clinic: tuple, method: str, *args: object) -> object:
    lab, cfg, state = clinic
    return in_ns(lab.ns("box"), sets_call, cfg, state, method, *args)


def test_block_stops_a_live_flow_and_unblock_restores_it(clinic: tuple, tmp_path: Path) -> None:
    lab = clinic[0]
    ping_log = tmp_path / "ping.log"
    # a continuous ping from 受付PC to the internet server: one live ICMP flow through the box
    pinger = lab.spawn("reception", ["ping", "-n", "-i", "0.1", "-c", "400", SERVER], log_path=ping_log)

    def replies() -> int:
        return ping_log.read_text().count("icmp_seq=") if ping_log.exists() else 0

    try:
        # the flow is live (answered) before the block: its start is not a fixed pause on a loaded machine
        assert wait_until(lambda: replies() >= 3, timeout=20) is not None, (
            "the long-running ping gets no replies"
        )
        assert lab.ping("reception", SERVER)
        _call(clinic, "block", SERVER, 600, "テスト", "test")
        assert not lab.ping("reception", SERVER, count=2)
        assert not tcp_ok(lab, "reception", SERVER, 80)
        blocked = _call(clinic, "list_blocked")
        assert [(e.ip, e.reason, e.source) for e in blocked] == [(SERVER, "テスト", "test")]
        assert 590 < blocked[0].expires_in <= 600
        _call(clinic, "block", SERVER, 1200, "テスト", "test")  # blocked again: the timeout is renewed
        assert 1190 < _call(clinic, "list_blocked")[0].expires_in <= 1200
        assert _call(clinic, "unblock", SERVER) is True
        assert _call(clinic, "unblock", SERVER) is False  # not there any more (ENOENT), not an error
        assert lab.ping("reception", SERVER)
        after = replies()
        # the long-running ping sees replies again: six in a row, as checked below
        assert wait_until(lambda: replies() >= after + 6, timeout=20) is not None, (
            "no replies after the unblock"
        )
    finally:
        lab.stop(pinger)
    out = ping_log.read_text()
    # the same long-running flow saw replies, then none while blocked, then replies again
    seqs = [int(line.split("icmp_seq=")[1].split()[0]) for line in out.splitlines() if "icmp_seq=" in line]
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    assert seqs and max(gaps) >= 10 and seqs[-1] - seqs[-1 - 5] == 5, out[-2000:]


def test_block_expires_by_itself(clinic: tuple) -> None:
    lab = clinic[0]
    _call(clinic, "block", SERVER, 2, "短時間", "test")
    assert not lab.ping("reception", SERVER, count=1, wait=0.5)
    took = wait_until(lambda: lab.ping("reception", SERVER, count=1, wait=0.3), timeout=8)
    assert took is not None and took < 6


def test_clinic_hosts_and_allowlist_are_never_blocked(clinic: tuple) -> None:
    for ip in (RECEPTION, BOX_LAN, "203.0.113.1", "not-an-ip"):
        with pytest.raises(ApplyError) as info:
            _call(clinic, "block", ip, 60, "x", "test")
        assert info.value.code in ("firewall.protected", "firewall.bad_ip")
    assert clinic[0].ping("reception", SERVER)


def test_quarantine_confines_a_lan_host(clinic: tuple) -> None:
    lab = clinic[0]
    web = lab.listen_tcp("box", 443)
    dns = lab.listen_tcp("box", 53)
    try:
        assert tcp_ok(lab, "reception", BOX_LAN, 53)
        _call(clinic, "quarantine", RECEPTION)
        assert not lab.ping("reception", SERVER)
        assert not lab.ping("reception", BOX_LAN)
        assert not tcp_ok(lab, "reception", BOX_LAN, 53)
        assert tcp_ok(lab, "reception", BOX_LAN, 443)  # the web UI explains what happened
        assert _call(clinic, "release", RECEPTION) is True
        assert lab.ping("reception", SERVER)
    finally:
        lab.stop(web)
        lab.stop(dns)


def test_quarantine_refuses_outside_addresses(clinic: tuple) -> None:
    with pytest.raises(ApplyError) as info:
        _call(clinic, "quarantine", SERVER)
    assert info.value.code == "firewall.quarantine_outside"


def test_vpn_admission_is_per_user(clinic: tuple) -> None:
    lab = clinic[0]
    _call(clinic, "admit_vpn", "yamada", "10.99.0.2", 2)
    listing = lab.run("box", ["nft", "list", "table", "inet", "mamori"]).stdout
    assert "10.99.0.2 timeout 2s" in listing
    assert _call(clinic, "revoke_vpn", "yamada", "10.99.0.2") is True
    assert _call(clinic, "revoke_vpn", "yamada", "10.99.0.2") is False


def _block_many(cfg: object, state: str, items: list, source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """In the box: block_many, with the refusals as (ip, code) (typed errors do not cross processes)."""
    done, refused = sets_call(cfg, state, "block_many", items, source)
    return done, [(ip, exc.code) for ip, exc in refused]


def test_block_many_in_one_transaction_with_refusals(clinic: tuple) -> None:
    lab, cfg, state = clinic
    done, refused = in_ns(lab.ns("box"), _block_many, cfg, state,
                          [(SERVER, 600, "a"), ("198.51.100.67", 600, "b"), (RECEPTION, 600, "c"), ("x", 1, "d")], "ids")  # fmt: skip
    assert done == [SERVER, "198.51.100.67"]
    assert refused == [(RECEPTION, "firewall.protected"), ("x", "firewall.bad_ip")]
    assert not lab.ping("reception", SERVER)
    # again, with one already blocked: refreshed, not an error
    done, refused = in_ns(
        lab.ns("box"), _block_many, cfg, state, [(SERVER, 900, "a2"), ("198.51.100.68", 600, "c")], "ids"
    )
    assert done == [SERVER, "198.51.100.68"] and refused == []
    for ip in (SERVER, "198.51.100.67", "198.51.100.68"):
        assert _call(clinic, "unblock", ip) is True
    assert lab.ping("reception", SERVER)


def test_feed_replaces_whole_and_refuses_clinic_networks(clinic: tuple) -> None:
    lab = clinic[0]
    feed = ["198.51.100.0/28", "198.51.100.8/29", "2001:db8:66::/48"]  # overlapping entries are merged
    assert _call(clinic, "replace_feed", feed, "test") == 2
    assert not lab.ping("reception", SERVER)  # 198.51.100.10 is inside the feed
    assert lab.ping("reception", "198.51.100.66")
    for bad in (["192.168.0.0/16"], ["203.0.113.0/30"], ["not-a-net"]):
        with pytest.raises(ApplyError):
            _call(clinic, "replace_feed", bad, "test")
    assert not lab.ping("reception", SERVER)  # a refused feed changed nothing
    assert _call(clinic, "replace_feed", [], "test") == 0
    assert lab.ping("reception", SERVER)
