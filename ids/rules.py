"""Build the one rule file Suricata loads: Mamori's clinic rules plus the selected third-party rules.

Scope: parsing rule lines far enough to know sid, category (the file they came from), message and whether
they are enabled; selecting by profile (`clinic` = curated ET Open categories that matter to a small
clinic, sized for a Raspberry Pi with 2 GB; `full` = everything) and by the config's enable/disable lists.
Non-goal: rewriting rule options (suricata-update's modify/drop filters); flowbit dependency resolution
beyond what whole categories give (Suricata only warns about an unset flowbit).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ids.mamori_rules import RULES_FILE

MAMORI_CATEGORY = "mamori"
# ET Open categories for the clinic profile. Chosen for what a clinic of 2-20 PCs meets: attacks on
# exposed RDP/SMB (exploit, netbios, rpc, scan, telnet), infected PCs calling home (botcc, c2, ja3,
# attack_response, worm, coinminer, dns), staff lured by phishing (phishing, web_client, current_events),
# and known-bad address lists. Left out: policy/info/hunting (noise for a clinic), web_specific_apps and
# web_server (a clinic exposes no web applications), exploit_kit (mostly kits long gone; memory),
# games/chat/p2p/voip/scada. Memory: about half of `full` (bench_ids measures it).
CLINIC_CATEGORIES: frozenset[str] = frozenset({
    "3coresec", "botcc", "ciarmy", "compromised", "drop", "dshield", "threatview_CS_c2",
    "attack_response", "coinminer", "current_events", "dns", "dos", "exploit", "ftp",
    "ja3", "netbios", "phishing", "rpc", "scan", "shellcode", "smtp", "telnet", "web_client", "worm",
})  # fmt: skip
NEVER_LOADED: frozenset[str] = frozenset({"deleted"})  # ET keeps removed rules there, all commented out

_RULE = re.compile(r"^(#\s*)?(alert|drop|pass|reject|rejectsrc|rejectdst|rejectboth)\s.*\(.*\)\s*$")
_SID = re.compile(r"[(;]\s*sid\s*:\s*(\d+)\s*;")
_MSG = re.compile(r'[(;]\s*msg\s*:\s*"((?:[^"\\]|\\.)*)"\s*;')
_CLASSTYPE = re.compile(r"[(;]\s*classtype\s*:\s*([\w-]+)\s*;")


@dataclass(frozen=True)
class Rule:
    sid: int
    enabled: bool
    category: str
    msg: str
    classtype: str
    text: str  # the rule without a leading '#'

    def line(self, enabled: bool) -> str:
        return self.text if enabled else "# " + self.text


@dataclass(frozen=True)
class Selection:
    profile: str = "clinic"
    enable_sids: tuple[int, ...] = ()
    disable_sids: tuple[int, ...] = ()
    disable_categories: tuple[str, ...] = ()


@dataclass
class BuiltRules:
    text: str
    enabled: int
    total: int
    by_category: Counter[str] = field(default_factory=Counter)
    unknown_sids: list[int] = field(default_factory=list)


def category_of(filename: str) -> str:
    """'emerging-scan.rules' → 'scan'; 'botcc.rules' → 'botcc'."""
    stem = Path(filename).name.removesuffix(".rules")
    return stem.removeprefix("emerging-")


def normalise_category(name: str) -> str:
    return category_of(name.strip())


def parse_rules(text: str, category: str) -> list[Rule]:
    """Rule lines (enabled or commented out) of one file; other comments and blank lines are skipped."""
    rules: list[Rule] = []
    for raw in text.splitlines():
        line = raw.strip()
        m = _RULE.match(line)
        if not m:
            continue
        body = line[len(m.group(1)) :] if m.group(1) else line
        sid = _SID.search(body)
        if sid is None:
            continue
        msg = _MSG.search(body)
        ct = _CLASSTYPE.search(body)
        rules.append(Rule(int(sid.group(1)), m.group(1) is None, category, msg.group(1) if msg else "",
                          ct.group(1) if ct else "unknown", body))  # fmt: skip
    return rules


def load_source(source_dir: Path | None) -> list[Rule]:
    """Every rule of an installed source directory (*.rules, sorted by name for a stable output)."""
    if source_dir is None or not source_dir.is_dir():
        return []
    rules: list[Rule] = []
    for path in sorted(source_dir.glob("*.rules")):
        category = category_of(path.name)
        if category in NEVER_LOADED:
            continue
        rules.extend(parse_rules(path.read_text(encoding="utf-8", errors="replace"), category))
    return rules


def mamori_rules() -> list[Rule]:
    return parse_rules(RULES_FILE.read_text(encoding="utf-8"), MAMORI_CATEGORY)


def in_profile(rule: Rule, profile: str) -> bool:
    return rule.category == MAMORI_CATEGORY or profile == "full" or rule.category in CLINIC_CATEGORIES


def build(third_party: list[Rule], selection: Selection) -> BuiltRules:
    """The text of the single rule file: Mamori's rules first, then the profile's categories."""
    disabled_categories = {normalise_category(c) for c in selection.disable_categories}
    enable, disable = set(selection.enable_sids), set(selection.disable_sids)
    out = ["# Built by Mamori (ids/rules.py). Do not edit: it is replaced on every rule change."]
    built = BuiltRules(text="", enabled=0, total=0)
    seen: set[int] = set()
    for rule in [*mamori_rules(), *third_party]:
        if rule.sid in seen or not in_profile(rule, selection.profile):
            continue
        seen.add(rule.sid)
        on = rule.enabled or rule.sid in enable
        if rule.sid in disable or rule.category in disabled_categories:
            on = False
        out.append(rule.line(on))
        built.total += 1
        if on:
            built.enabled += 1
            built.by_category[rule.category] += 1
    built.unknown_sids = sorted((enable | disable) - seen)
    built.text = "\n".join(out) + "\n"
    return built
