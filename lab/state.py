"""Snapshots of a namespace's live network state, normalised so that two snapshots compare equal exactly
when the policy and addressing are the same (kernel handles, counters and set-element expiry removed)."""

from __future__ import annotations

import json
from typing import Any

from lab.topology import Lab

VOLATILE_KEYS = {"handle", "expires", "packets", "bytes"}


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in VOLATILE_KEYS}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def ruleset(lab: Lab, key: str = "box") -> list[Any]:
    """`nft -j list ruleset` without metainfo and volatile values."""
    data = json.loads(lab.run(key, ["nft", "-j", "list", "ruleset"]).stdout or '{"nftables": []}')
    return [_strip(item) for item in data["nftables"] if "metainfo" not in item]


def addresses(lab: Lab, key: str = "box") -> dict[str, list[str]]:
    data = json.loads(lab.run(key, ["ip", "-j", "addr", "show"]).stdout)
    return {
        link["ifname"]: sorted(
            f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("scope") != "link"
        )
        for link in data
    }


def snapshot(lab: Lab, key: str = "box") -> dict[str, Any]:
    return {"ruleset": ruleset(lab, key), "addresses": addresses(lab, key)}
