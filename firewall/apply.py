"""Make a rendered `inet mamori` table live, keeping what is in the dynamic sets, and read it back.

Scope: this table only. `apply` sends the rendered batch (add, delete, add the table with everything)
plus the live elements of the dynamic sets (blocked, quarantine, feeds, VPN sessions) with their
remaining timeouts, all in one transaction: the kernel never sees the table without its blocklist, and
a refused batch changes nothing. Non-goal: merging with other tables; they are never touched.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from appliance.errors import ApplyError
from firewall import nftjson as nj
from firewall.nft import list_json, run_batch
from firewall.render import DYNAMIC_SETS

log = logging.getLogger(__name__)
TABLE_REF = f"table {nj.FAMILY} {nj.TABLE}"


def _is_dynamic(name: str) -> bool:
    return name in DYNAMIC_SETS or name.startswith("vpnu_")


def _seed_elem(elem: Any) -> Any:
    """A listed element -> an element to add again: a timed one keeps its remaining time (at least 1 s)."""
    if isinstance(elem, dict) and "elem" in elem:
        inner = elem["elem"]
        out = {"val": inner["val"]}
        if "expires" in inner or "timeout" in inner:
            out["timeout"] = max(1, int(inner.get("expires", inner.get("timeout", 1))))
        if "comment" in inner:
            out["comment"] = inner["comment"]
        return {"elem": out}
    return elem


def live_dynamic_elements() -> dict[str, tuple[str, list[Any]]]:
    """Set name -> (type, elements) for the dynamic sets of the live table; empty if there is no table."""
    listing = list_json(f"list {TABLE_REF}")
    out: dict[str, tuple[str, list[Any]]] = {}
    for obj in listing or []:
        s = obj.get("set")
        if s and _is_dynamic(s["name"]) and s.get("elem"):
            out[s["name"]] = (str(s.get("type")), [_seed_elem(e) for e in s["elem"]])
    return out


def with_seeds(rendered: dict[str, Any], live: dict[str, tuple[str, list[Any]]]) -> dict[str, Any]:
    """The rendered batch plus "add element" for every live dynamic set that still exists with the same type."""
    batch = copy.deepcopy(rendered)
    declared = {
        c["add"]["set"]["name"]: c["add"]["set"]["type"]
        for c in batch["nftables"]
        if "set" in c.get("add", {})
    }
    for name, (kind, elems) in sorted(live.items()):
        if declared.get(name) != kind:
            log.info(
                "dropping the live contents of set %s: no longer in the ruleset (or its type changed)", name
            )
            continue
        batch["nftables"].append(nj.add("element", {"name": name, "elem": elems}))
    return batch


def check(rendered: dict[str, Any]) -> None:
    """Ask the kernel (dry run: parsed, validated, nothing committed) whether it would take the table."""
    run_batch(rendered, dry_run=True)


def apply(rendered: dict[str, Any]) -> None:
    """Caller holds firewall.nft.sets_lock so no set update slips between reading and committing."""
    batch = with_seeds(rendered, live_dynamic_elements())
    run_batch(batch)
    log.info("firewall table %s applied (%d commands)", TABLE_REF, len(batch["nftables"]))


def summary_of_rendered(rendered: dict[str, Any]) -> dict[str, Any]:
    chains: dict[str, int] = {}
    sets, counters = set(), set()
    for cmd in rendered["nftables"]:
        body = cmd.get("add", {})
        if "chain" in body:
            chains.setdefault(body["chain"]["name"], 0)
        elif "rule" in body:
            chains[body["rule"]["chain"]] = chains.get(body["rule"]["chain"], 0) + 1
        elif "set" in body:
            sets.add(body["set"]["name"])
        elif "counter" in body:
            counters.add(body["counter"]["name"])
    return {"chains": chains, "sets": sets, "counters": counters}


def summary_of_live() -> dict[str, Any] | None:
    listing = list_json(f"list {TABLE_REF}")
    if listing is None:
        return None
    chains: dict[str, int] = {}
    sets, counters = set(), set()
    for obj in listing:
        if "chain" in obj:
            chains.setdefault(obj["chain"]["name"], 0)
        elif "rule" in obj:
            chains[obj["rule"]["chain"]] = chains.get(obj["rule"]["chain"], 0) + 1
        elif "set" in obj:
            sets.add(obj["set"]["name"])
        elif "counter" in obj:
            counters.add(obj["counter"]["name"])
    return {"chains": chains, "sets": sets, "counters": counters}


def verify(rendered: dict[str, Any]) -> None:
    """Read `list table inet mamori` back: same chains with the same number of rules, same sets and counters."""
    want, have = summary_of_rendered(rendered), summary_of_live()
    if have == want:
        return
    if have is None:
        detail = "the table inet mamori does not exist"
    else:
        diff = {k: sorted(set(want[k]) ^ set(have[k])) for k in want if want[k] != have[k]}
        bad_rules = sorted(c for c in want["chains"] if want["chains"][c] != have["chains"].get(c))
        detail = f"differences: {diff}; chains with other rule counts: {bad_rules}"
    raise ApplyError(
        f"ファイアウォールの設定が意図どおりに反映されていません（{detail}）",
        f"the live firewall table is not what was applied ({detail})",
        code="firewall.verify",
    )


def remove() -> None:
    """Delete the table (only ours). Used when there is no previous config to go back to."""
    table = {"family": nj.FAMILY, "name": nj.TABLE}
    run_batch({"nftables": [{"add": {"table": table}}, {"delete": {"table": dict(table)}}]})
