"""Applying the rendered table in a real namespace: all or nothing, others' tables untouched, sets kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.errors import ApplyError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from firewall import apply as fw_apply
from firewall.render import render_ruleset, vpn_set_name
from firewall.subsystem import FirewallSubsystem
from tests.integration.test_firewall_helpers import in_ns, netns, ruleset, set_elements, sh
from tests.unit.test_firewall_helpers import config

pytestmark = pytest.mark.integration

OTHER_TABLE = "table inet other {\n chain c {\n  type filter hook input priority 10; policy accept;\n  tcp dport 9 counter drop\n }\n}\n"


def _apply_and_verify(rendered: dict, run_dir: str) -> None:
    sub = FirewallSubsystem(Context(Paths(state_dir=Path(run_dir)), Database(Path(run_dir) / "db")))
    sub.check(rendered)
    sub.apply(rendered)
    sub.verify(rendered)


@pytest.fixture
def ns():
    with netns("a") as name:
        sh(name, "nft", "-f", "-", input=OTHER_TABLE)
        yield name


def test_apply_verify_and_other_tables_untouched(ns: str, tmp_path: Path) -> None:
    other_before = sh(ns, "nft", "-j", "list", "table", "inet", "other").stdout
    in_ns(ns, _apply_and_verify, render_ruleset(config()), str(tmp_path))
    assert "chain fwd_lan_wan" in sh(ns, "nft", "list", "table", "inet", "mamori").stdout
    # applying twice (the table now exists) works too
    in_ns(ns, _apply_and_verify, render_ruleset(config(firewall={"blocked_outbound": []})), str(tmp_path))
    assert "blocked-outbound" not in sh(ns, "nft", "list", "table", "inet", "mamori").stdout
    assert sh(ns, "nft", "-j", "list", "table", "inet", "other").stdout == other_before


def _broken(rendered: dict, how: str) -> dict:
    batch = json.loads(json.dumps(rendered))
    if how == "missing-chain":
        batch["nftables"].append({"add": {"rule": {"family": "inet", "table": "mamori", "chain": "input",
                                                   "expr": [{"jump": {"target": "no_such_chain"}}]}}})  # fmt: skip
    elif how == "bad-element":
        batch["nftables"].append({"add": {"element": {"family": "inet", "table": "mamori", "name": "blocked4",
                                                      "elem": ["2001:db8::1"]}}})  # fmt: skip
    elif how == "bad-schema":
        batch["nftables"].append({"add": {"rule": {"family": "inet", "table": "mamori", "chain": "input",
                                                   "expr": [{"no_such_statement": 1}]}}})  # fmt: skip
    return batch


@pytest.mark.parametrize("how", ["missing-chain", "bad-element", "bad-schema"])
def test_refused_ruleset_leaves_everything_as_it_was(ns: str, tmp_path: Path, how: str) -> None:
    in_ns(ns, _apply_and_verify, render_ruleset(config()), str(tmp_path))
    sh(ns, "nft", "add", "element", "inet", "mamori", "blocked4", "{ 198.51.100.66 timeout 1h }")
    before = ruleset(ns)
    broken = _broken(render_ruleset(config(vpn={"enabled": False})), how)
    with pytest.raises(ApplyError):
        in_ns(ns, fw_apply.check, broken)
    with pytest.raises(ApplyError):
        in_ns(ns, _apply_and_verify, broken, str(tmp_path))
    assert ruleset(ns) == before


def test_verify_notices_a_hand_edit(ns: str, tmp_path: Path) -> None:
    rendered = render_ruleset(config())
    in_ns(ns, _apply_and_verify, rendered, str(tmp_path))
    sh(ns, "nft", "add", "rule", "inet", "mamori", "fwd_lan_wan", "accept")
    with pytest.raises(ApplyError) as info:
        in_ns(ns, fw_apply.verify, rendered)
    assert "fwd_lan_wan" in info.value.text("en")


def test_rebuild_keeps_dynamic_sets(ns: str, tmp_path: Path) -> None:
    in_ns(ns, _apply_and_verify, render_ruleset(config()), str(tmp_path))
    vset = vpn_set_name("yamada")
    sh(
        ns,
        "nft",
        "add",
        "element",
        "inet",
        "mamori",
        "blocked4",
        "{ 198.51.100.66 timeout 1h, 198.51.100.67 }",
    )
    sh(ns, "nft", "add", "element", "inet", "mamori", "quarantine4", "{ 192.168.10.20 timeout 10m }")
    sh(ns, "nft", "add", "element", "inet", "mamori", vset, "{ 10.99.0.2 timeout 8h }")
    sh(ns, "nft", "add", "element", "inet", "mamori", "feed4", "{ 203.0.113.128/25 }")
    # a different config: still rebuilt whole, and the live contents come along
    in_ns(ns, _apply_and_verify, render_ruleset(config(firewall={"log_drops": False})), str(tmp_path))
    assert sorted(set_elements(ns, "blocked4")) == ["198.51.100.66", "198.51.100.67"]
    assert set_elements(ns, "quarantine4") == ["192.168.10.20"]
    assert set_elements(ns, vset) == ["10.99.0.2"]
    assert "203.0.113.128/25" in sh(ns, "nft", "list", "set", "inet", "mamori", "feed4").stdout
    listing = sh(ns, "nft", "list", "set", "inet", "mamori", "blocked4").stdout
    assert "198.51.100.66 timeout" in listing  # still expires by itself
    # a user removed from the config loses their set and their sessions with it
    users = [{"name": "vendor-a", "role": "vendor", "access": [{"dst": "電子カルテ", "service": "SSH"}]}]
    in_ns(ns, _apply_and_verify, render_ruleset(config(vpn={"users": users})), str(tmp_path))
    assert vset not in sh(ns, "nft", "list", "table", "inet", "mamori").stdout
    assert sorted(set_elements(ns, "blocked4")) == ["198.51.100.66", "198.51.100.67"]


def test_check_is_a_dry_run(ns: str, tmp_path: Path) -> None:
    in_ns(ns, _apply_and_verify, render_ruleset(config()), str(tmp_path))
    before = ruleset(ns)
    in_ns(ns, fw_apply.check, render_ruleset(config(firewall={"blocked_outbound": [], "log_drops": False})))
    assert ruleset(ns) == before


def test_counters_survive_a_rebuild_and_a_stale_record_is_recovered(ns: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    in_ns(ns, _apply_and_verify, render_ruleset(config()), str(a))
    # the same counter object survives a rebuild (its handle stays), so per-zone-pair numbers are kept
    before = json.loads(sh(ns, "nft", "-j", "-a", "list", "counter", "inet", "mamori", "fwd_lan_wan").stdout)
    in_ns(ns, _apply_and_verify, render_ruleset(config(firewall={"log_drops": False})), str(a))
    after = json.loads(sh(ns, "nft", "-j", "-a", "list", "counter", "inet", "mamori", "fwd_lan_wan").stdout)
    assert before["nftables"][1]["counter"]["handle"] == after["nftables"][1]["counter"]["handle"]
    # another state dir applies a table without the vpn zone; a's record still names the vpn counters,
    # which a's next table (also without vpn) would delete: the stale record must not make the apply fail
    in_ns(ns, _apply_and_verify, render_ruleset(config(vpn={"enabled": False})), str(b))
    in_ns(ns, _apply_and_verify, render_ruleset(config(vpn={"enabled": False})), str(a))
    assert "fwd_vpn_lan" not in sh(ns, "nft", "list", "counters", "table", "inet", "mamori").stdout


def test_allowlist_is_replaced_not_accumulated_and_order_is_stable(ns: str, tmp_path: Path) -> None:
    in_ns(
        ns,
        _apply_and_verify,
        render_ruleset(config(firewall={"allowlist": ["198.51.100.0/24"]})),
        str(tmp_path),
    )
    first = _stable(ruleset(ns))
    in_ns(ns, _apply_and_verify, render_ruleset(config(firewall={"allowlist": ["192.0.2.7"]})), str(tmp_path))
    listing = sh(ns, "nft", "list", "set", "inet", "mamori", "allow4").stdout
    assert "192.0.2.7" in listing and "198.51.100.0/24" not in listing
    # back to the first config: the listing is identical, object order included (rollbacks compare it)
    in_ns(
        ns,
        _apply_and_verify,
        render_ruleset(config(firewall={"allowlist": ["198.51.100.0/24"]})),
        str(tmp_path),
    )
    assert _stable(ruleset(ns)) == first


def _stable(node: object) -> object:
    """Without kernel handles and counter values (the way lab.state compares rulesets)."""
    if isinstance(node, dict):
        return {k: _stable(v) for k, v in node.items() if k not in ("handle", "packets", "bytes")}
    if isinstance(node, list):
        return [_stable(v) for v in node]
    return node
