"""Make a rendered `inet mamori` table live, keeping what is in the dynamic sets, and read it back.

Scope: this table only; other tables are never touched. Everything goes in one transaction: the kernel
never sees the table half-built or without its blocklist, and a refused batch changes nothing.

When the table does not exist yet, the rendered batch (add, delete, add the table with everything) is
sent as is. When it exists, the table is replaced whole except the live dynamic sets (blocked, quarantine,
feeds, VPN sessions) whose definition did not change: every chain is flushed and deleted, every counter
and every other set deleted, then everything rendered is added; "add set" on a kept set is a no-op, so its
elements stay with their exact timeouts. Why not re-seed (list the elements, delete the table, add them
back): listing and re-adding 100k addresses costs ~2 s on a small box; keeping them in the kernel costs
nothing, and there is no window in which an element added by another process could be lost.
A dynamic set whose definition changed (a code change, never a config change) starts empty; `with_seeds`
and `live_dynamic_elements` can carry elements over in that case and are used by tools and benchmarks.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import nftables

from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from firewall import nftjson as nj
from firewall.failclosed import FAIL_CLOSED_NFT
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


def _obj(kind: str, name: str) -> dict[str, Any]:
    return {kind: {"family": nj.FAMILY, "table": nj.TABLE, "name": name}}


def _rendered_sets(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["add"]["set"]["name"]: c["add"]["set"] for c in rendered["nftables"] if "set" in c.get("add", {})
    }


def live_structure(counters_hint: list[str] | None) -> dict[str, Any] | None:
    """Chains, sets (definitions only) and counters of the live table, or None if it does not exist.

    Listing is cheap only for what does not pull set elements into nft's cache: `list chains` and
    `list sets` (terse) take a millisecond with 100k blocked, `list counters` ~1 s. So counter names come
    from the record of the last apply when there is one (`counters_hint`), from the kernel otherwise.
    """
    sets = list_json(f"list sets table {nj.FAMILY} {nj.TABLE}", terse=True)
    if sets is None:
        return None
    chains = [o["chain"]["name"] for o in list_json(f"list chains {nj.FAMILY}", terse=True) or []
              if "chain" in o and o["chain"].get("table") == nj.TABLE]  # fmt: skip
    if counters_hint is None:
        listing = list_json(f"list counters table {nj.FAMILY} {nj.TABLE}", terse=True) or []
        counters_hint = [o["counter"]["name"] for o in listing if "counter" in o]
    return {"chains": chains, "sets": [o["set"] for o in sets if "set" in o], "counters": counters_hint}


def replace_batch(rendered: dict[str, Any], live: dict[str, Any] | None) -> tuple[dict[str, Any], set[str]]:
    """The batch that turns the live table (live_structure, or None) into `rendered`; and the sets it keeps.

    Counters and sets that the new table has too (same type and flags) are kept ("add" on an existing one
    is a no-op): counters keep their numbers, dynamic sets their elements, config-driven sets are emptied
    and refilled. Keeping objects in place also keeps the listing order stable, so a rollback to the
    same config gives an identical `nft -j list ruleset` (what the core's lab tests compare).
    """
    if live is None:
        return rendered, set()
    wanted = _rendered_sets(rendered)
    wanted_counters = {
        c["add"]["counter"]["name"] for c in rendered["nftables"] if "counter" in c.get("add", {})
    }
    keep, drop, refill = set(), [], []
    for s in live["sets"]:
        w = wanted.get(s["name"])
        same = (
            w is not None
            and w["type"] == s.get("type")
            and sorted(w.get("flags", [])) == sorted(s.get("flags", []))
        )
        if not same:
            drop.append(s["name"])
        elif _is_dynamic(s["name"]):
            keep.add(s["name"])
        else:
            refill.append(
                s["name"]
            )  # config-driven contents (allowlist): emptied, the rendering re-adds them
    cmds: list[dict[str, Any]] = [{"add": {"table": {"family": nj.FAMILY, "name": nj.TABLE}}}]
    cmds += [{"flush": _obj("chain", c)} for c in live["chains"]]
    cmds += [{"delete": _obj("chain", c)} for c in live["chains"]]
    cmds += [{"delete": _obj("counter", c)} for c in live["counters"] if c not in wanted_counters]
    cmds += [{"delete": _obj("set", s)} for s in drop]
    cmds += [{"flush": _obj("set", s)} for s in refill]
    body = [c for c in rendered["nftables"] if "table" not in c.get("add", {}) and "delete" not in c]
    return {"nftables": cmds + body}, keep


def table_exists() -> bool:
    """Whether our table is in the kernel (cheap: lists table names, not their contents)."""
    return any(
        obj.get("table", {}).get("name") == nj.TABLE and obj["table"].get("family") == nj.FAMILY
        for obj in list_json("list tables") or []
    )


def _record_path(run_dir: Path | None) -> Path | None:
    return run_dir / "firewall-counters.json" if run_dir else None


def apply(rendered: dict[str, Any], run_dir: Path | None = None) -> None:
    """Caller holds firewall.nft.sets_lock so no set update slips between reading and committing."""
    record = _record_path(run_dir)
    hint = json.loads(record.read_text(encoding="utf-8")) if record and record.exists() else None
    batch, kept = replace_batch(rendered, live_structure(hint))
    try:
        run_batch(batch)
    except ApplyError:
        if hint is None:
            raise
        # the record may be stale (someone else changed the table): nothing was committed; ask the kernel
        log.warning("firewall apply failed with the recorded counter names; retrying with the live list")
        batch, kept = replace_batch(rendered, live_structure(None))
        run_batch(batch)
    if record:
        names = sorted(
            c["add"]["counter"]["name"] for c in rendered["nftables"] if "counter" in c.get("add", {})
        )
        atomic_write(record, json.dumps(names))
    log.info(
        "firewall table %s applied (%d commands, %d live sets kept)",
        TABLE_REF,
        len(batch["nftables"]),
        len(kept),
    )


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
    """Delete the table (only ours). Never used to undo a failed apply: that is `fail_closed()`."""
    table = {"family": nj.FAMILY, "name": nj.TABLE}
    run_batch({"nftables": [{"add": {"table": table}}, {"delete": {"table": dict(table)}}]})


def fail_closed() -> None:
    """Replace our table with the fail-closed policy (forward nothing), in one transaction."""
    handle = nftables.Nftables()
    rc, _, err = handle.cmd(FAIL_CLOSED_NFT)
    if rc != 0:
        raise ApplyError(
            "安全側の既定ポリシーを読み込めませんでした: " + err.strip(),
            "could not load the fail-closed policy: " + err.strip(),
            code="firewall.fail_closed",
        )
