"""Shared helpers of the firewall unit tests: build configs from the example, pick chains out of a batch."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from appliance.config.model import MamoriConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clinic.yaml"


def example_dict() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def config(**changes: Any) -> MamoriConfig:
    """The example config with top-level sections replaced or (for dicts) updated."""
    data = copy.deepcopy(example_dict())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return MamoriConfig.model_validate(data)


def chain_rules(batch: dict, chain: str) -> list[str]:
    """The rules of one chain, each as compact JSON text (easy to search for a port or a set)."""
    out = []
    for cmd in batch["nftables"]:
        body = cmd.get("add", {}).get("rule")
        if body and body["chain"] == chain:
            out.append(json.dumps(body["expr"], ensure_ascii=False, sort_keys=True))
    return out


def chains(batch: dict) -> set[str]:
    return {c["add"]["chain"]["name"] for c in batch["nftables"] if "chain" in c.get("add", {})}


def sets(batch: dict) -> dict[str, dict]:
    return {c["add"]["set"]["name"]: c["add"]["set"] for c in batch["nftables"] if "set" in c.get("add", {})}
