"""The batch that replaces a live table: what is kept, emptied, deleted (pure; no kernel needed)."""

from __future__ import annotations

import pytest

from firewall.apply import replace_batch
from firewall.render import render_ruleset, vpn_set_name
from tests.unit.test_firewall_helpers import config


def _live(
    sets: list[dict], chains: tuple[str, ...] = ("input", "guard"), counters: tuple[str, ...] = ()
) -> dict:
    return {"chains": list(chains), "sets": sets, "counters": list(counters)}


def _verbs(batch: dict, verb: str, kind: str) -> list[str]:
    return [c[verb][kind]["name"] for c in batch["nftables"] if verb in c and kind in c[verb]]


def test_no_table_sends_the_rendering_as_is() -> None:
    rendered = render_ruleset(config())
    assert replace_batch(rendered, None) == (rendered, set())


@pytest.mark.parametrize(
    ("live_set", "kept", "deleted", "flushed"),
    [
        ({"name": "blocked4", "type": "ipv4_addr", "flags": ["timeout"]}, {"blocked4"}, [], []),
        ({"name": "feed4", "type": "ipv4_addr", "flags": ["interval"]}, {"feed4"}, [], []),
        (
            {"name": vpn_set_name("yamada"), "type": "ipv4_addr", "flags": ["timeout"]},
            {vpn_set_name("yamada")},
            [],
            [],
        ),
        (
            {"name": "allow4", "type": "ipv4_addr", "flags": ["interval"]},
            set(),
            [],
            ["allow4"],
        ),  # config-driven
        (
            {"name": "blocked4", "type": "ipv4_addr", "flags": ["interval"]},
            set(),
            ["blocked4"],
            [],
        ),  # changed flags
        (
            {"name": "blocked4", "type": "ipv6_addr", "flags": ["timeout"]},
            set(),
            ["blocked4"],
            [],
        ),  # changed type
        (
            {"name": vpn_set_name("gone"), "type": "ipv4_addr", "flags": ["timeout"]},
            set(),
            [vpn_set_name("gone")],
            [],
        ),
    ],
)
def test_sets(live_set: dict, kept: set, deleted: list, flushed: list) -> None:
    batch, keep = replace_batch(render_ruleset(config()), _live([live_set]))
    assert keep == kept
    assert _verbs(batch, "delete", "set") == deleted
    assert _verbs(batch, "flush", "set") == flushed


def test_chains_flushed_then_deleted_and_only_unwanted_counters_deleted() -> None:
    batch, _ = replace_batch(render_ruleset(config()), _live([], counters=("fwd_lan_wan", "fwd_mgmt_wan")))
    cmds = batch["nftables"]
    assert cmds[0] == {"add": {"table": {"family": "inet", "name": "mamori"}}}
    assert _verbs(batch, "flush", "chain") == ["input", "guard"] == _verbs(batch, "delete", "chain")
    last_flush = max(i for i, c in enumerate(cmds) if "flush" in c and "chain" in c["flush"])
    first_delete = min(i for i, c in enumerate(cmds) if "delete" in c and "chain" in c["delete"])
    assert last_flush < first_delete  # rules that jump to a chain are gone before the chain is deleted
    assert _verbs(batch, "delete", "counter") == ["fwd_mgmt_wan"]
    assert not any("delete" in c and "table" in c["delete"] for c in cmds)  # the table itself stays
