"""Tiny builders for libnftables JSON expressions, so the renderer reads like the policy it writes.

Scope: only the expression shapes Mamori uses (matches on payload/meta/ct, set lookups, verdicts,
counters, log, limit). Non-goal: a general nftables JSON library.
"""

from __future__ import annotations

from typing import Any

Expr = dict[str, Any]

FAMILY = "inet"
TABLE = "mamori"


def match(left: Expr, right: Any, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def set_ref(name: str) -> str:
    return "@" + name


def anon(values: list[Any]) -> Any:
    """A single value as itself, several as an anonymous set (nft rejects one-element sets in some spots)."""
    return values[0] if len(values) == 1 else {"set": values}


def ifnames(names: list[str]) -> Expr:
    return match(meta("iifname"), anon(sorted(names)))


def oifnames(names: list[str]) -> Expr:
    return match(meta("oifname"), anon(sorted(names)))


def ct_state(*states: str) -> Expr:
    return match({"ct": {"key": "state"}}, list(states), op="in")


def jump(chain: str) -> Expr:
    return {"jump": {"target": chain}}


def goto(chain: str) -> Expr:
    return {"goto": {"target": chain}}


ACCEPT: Expr = {"accept": None}
DROP: Expr = {"drop": None}
RETURN: Expr = {"return": None}


def counter(name: str | None = None) -> Expr:
    """A named counter (readable by `mamori fw status`) or an anonymous one on the rule itself."""
    return {"counter": name} if name else {"counter": None}


def addr_value(text: str) -> Any:
    """'10.0.0.0/8' -> prefix object, '10.0.0.1' -> the string itself (an exact address)."""
    if "/" in text:
        addr, length = text.split("/", 1)
        return {"prefix": {"addr": addr, "len": int(length)}}
    return text


def add(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"add": {kind: {"family": FAMILY, "table": TABLE, **body}}}


def rule(chain: str, exprs: list[Expr], comment: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"chain": chain, "expr": exprs}
    if comment:
        body["comment"] = clip_comment(comment)
    return add("rule", body)


def clip_comment(text: str, limit: int = 120) -> str:
    """nft comments are at most 128 bytes; cut on a character boundary so Japanese stays valid UTF-8."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")
