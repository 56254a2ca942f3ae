"""Restoring onto other hardware: the ports a backup's config names, the ports this box has, and a mapping.

A Raspberry Pi calls its port `eth0`, a mini PC `enp1s0`. Before a restore swaps anything, `plan()` compares
the physical ports the backup's config names (`interfaces[].name` of ports, `interfaces[].parent` of VLANs)
with the box's own. If one is missing, the restore is refused with both lists and how to write a mapping;
with a mapping (`wan0=enp1s0,lan0=enp2s0`), the config text is rewritten in every place that names an
interface (`interfaces[].name`, `interfaces[].parent`, `ids.interfaces[]`), comments and layout untouched,
and the result must load (parse_config) before anything is written.

Scope: ports only. Zones, DHCP ranges and firewall rules name zones, not ports, so they follow by
themselves; `vpn.interface` is the WireGuard interface Mamori creates, not a port, and is never renamed.
A VLAN called `<parent>.<id>` follows its parent (`eth0.40` -> `enp1s0.40`); other VLAN names stay.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

from appliance.backup.errors import BackupError

if TYPE_CHECKING:
    from appliance.config.model import MamoriConfig

log = logging.getLogger(__name__)

MAX_IFNAME = 15
# Link kinds that are a port a cable goes into: real hardware has no kind; veth is what a lab or a
# container gives a box. VLANs, bridges, WireGuard, tun devices are made by software (often by Mamori).
_PORT_KINDS = (None, "veth")


class PortMismatchError(BackupError):
    """The backup's config names ports this box does not have, and no (sufficient) mapping was given."""

    code = "backup.ports"

    def __init__(self, wanted: Collection[str], present: Collection[str], missing: Collection[str]) -> None:
        # The config's order (wan first, as the clinic wrote it), not sorted: easier to match to cables.
        self.wanted, self.present, self.missing = list(wanted), sorted(present), list(missing)
        example = ",".join(f"{a}={b}" for a, b in suggest(self.wanted, self.present).items())
        uses, lacks = ", ".join(self.wanted), ", ".join(self.missing)
        which_ja = f"（{uses}）" if self.missing == self.wanted else f"（{uses}）のうち {lacks} "
        which_en = uses if self.missing == self.wanted else f"{uses}, of which {lacks}"
        super().__init__(
            f"バックアップの設定が使うポート{which_ja}がこの機械にありません。"
            f"この機械のポート: {', '.join(self.present) or 'なし'}。どのケーブルをどのポートに挿したか確かめて、"
            f"--ports {example or '旧ポート=新ポート'} のように対応を指定してもう一度実行してください。"
            "機器は変更していません",
            f"the backup's config uses ports {which_en} not on this box; this box has: "
            f"{', '.join(self.present) or 'no ports'}. Check which cable is in which port and run again with "
            f"--ports {example or 'old=new'}; the box was not changed",
        )


class PortMapError(BackupError):
    """The mapping itself is wrong (unknown port, two onto one, malformed)."""

    code = "backup.port_map"

    def __init__(self, ja: str, en: str) -> None:
        super().__init__(ja + "。機器は変更していません", en + "; the box was not changed")


@dataclass(frozen=True)
class PortPlan:
    """What a restore does to the ports: `renames` (old name -> new, ports and VLANs that follow them),
    and the config text to install (`text`, the backup's own when nothing is renamed)."""

    wanted: tuple[str, ...]
    present: tuple[str, ...]
    renames: dict[str, str] = field(default_factory=dict)
    text: str = ""
    original: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.renames)

    def diff(self) -> str:
        """The backup's config against the one that will be installed, as a revision diff reads."""
        from appliance.revisions import readable_diff

        return readable_diff(self.original, self.text) if self.changed else ""

    def comment(self) -> str:
        return f"復元（ポート対応: {self.summary()}）"

    def summary(self) -> str:
        """`wan0→enp1s0, lan0→enp2s0` (ports and VLANs, in the order the config lists them)."""
        return ", ".join(f"{a}→{b}" for a, b in self.renames.items())


def config_ports(cfg: MamoriConfig) -> list[str]:
    """The physical ports a config names: interfaces without a parent, and the parents of VLANs."""
    names = {i.name for i in cfg.interfaces}
    ports = [i.name for i in cfg.interfaces if i.parent is None]
    ports += [i.parent for i in cfg.interfaces if i.parent and i.parent not in names]
    return list(dict.fromkeys(ports))


def detect_ports() -> list[str]:
    """The physical ports of this box, from the kernel (pyroute2), in the namespace we run in."""
    from pyroute2 import IPRoute

    found = []
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else None
            if name != "lo" and kind in _PORT_KINDS:
                found.append(name)
    return sorted(found)


def parse_mapping(spec: str) -> dict[str, str]:
    """`wan0=enp1s0,lan0=enp2s0` -> {'wan0': 'enp1s0', 'lan0': 'enp2s0'}."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        old, sep, new = (s.strip() for s in part.partition("="))
        if not sep or not old or not new:
            raise PortMapError(f"ポートの対応「{part}」は 旧ポート=新ポート の形で書いてください",
                               f"port mapping {part!r} must be old=new")  # fmt: skip
        if old in mapping:
            raise PortMapError(f"{old} の対応が2回書かれています", f"{old} is mapped twice")
        mapping[old] = new
    return mapping


def check_mapping(
    wanted: Collection[str], present: Collection[str], mapping: Mapping[str, str]
) -> dict[str, str]:
    """Every port of the backup -> the port of this box it becomes. Raises unless that is a one-to-one map
    onto ports this box has. Ports not in `mapping` keep their name (and must exist here)."""
    unknown = sorted(set(mapping) - set(wanted))
    if unknown:
        raise PortMapError(
            f"{', '.join(unknown)} はバックアップの設定にないポートです（設定のポート: {', '.join(sorted(wanted))}）",
            f"{', '.join(unknown)} not a port of the backup's config (its ports: {', '.join(sorted(wanted))})",
        )
    final = {port: mapping.get(port, port) for port in wanted}
    absent = sorted({new for old, new in final.items() if old in mapping and new not in present})
    if absent:
        raise PortMapError(
            f"{', '.join(absent)} はこの機械にないポートです（この機械のポート: {', '.join(sorted(present))}）",
            f"{', '.join(absent)} not a port of this box (its ports: {', '.join(sorted(present))})",
        )
    missing = [old for old, new in final.items() if new not in present]
    if missing:
        raise PortMismatchError(wanted, present, missing)
    seen: dict[str, str] = {}
    for old, new in final.items():
        if new in seen:
            raise PortMapError(f"{seen[new]} と {old} が同じポート {new} に割り当てられています",
                               f"{seen[new]} and {old} are both mapped to {new}")  # fmt: skip
        seen[new] = old
    return final


def suggest(wanted: Collection[str], present: Collection[str]) -> dict[str, str]:
    """An example for the message: the missing ports paired in order with the box's unused ports."""
    missing = [p for p in wanted if p not in present]
    unused = [p for p in present if p not in wanted]
    return dict(zip(missing, unused, strict=False))


def renames_for(cfg: MamoriConfig, ports: Mapping[str, str]) -> dict[str, str]:
    """Old -> new name for every interface that changes: the mapped ports, and VLANs named `<parent>.<id>`."""
    out = {old: new for old, new in ports.items() if old != new}
    for iface in cfg.interfaces:
        if iface.parent in out and iface.name == f"{iface.parent}.{iface.vlan}":
            new = f"{out[iface.parent]}.{iface.vlan}"
            if len(new) <= MAX_IFNAME:
                out[iface.name] = new
    return {name: out[name] for name in _order(cfg) if name in out}


def _order(cfg: MamoriConfig) -> list[str]:
    return list(dict.fromkeys([n for i in cfg.interfaces for n in (i.name, i.parent) if n]))


def rename_in_text(text: str, renames: Mapping[str, str]) -> str:
    """The config text with every interface reference renamed in place (comments and layout kept)."""
    if not renames:
        return text
    root = yaml.compose(text)
    spans: list[yaml.ScalarNode] = []
    for item in _seq(_get(root, "interfaces")):
        spans += [n for n in (_get(item, "name"), _get(item, "parent")) if isinstance(n, yaml.ScalarNode)]
    spans += [n for n in _seq(_get(_get(root, "ids"), "interfaces")) if isinstance(n, yaml.ScalarNode)]
    for node in sorted(spans, key=lambda n: n.start_mark.index, reverse=True):
        if node.value in renames:
            start, end = node.start_mark.index, node.end_mark.index
            text = text[:start] + _scalar(renames[node.value], node.style) + text[end:]
    return text


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)


def _seq(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(value: str, style: str | None) -> str:
    if style in ("'", '"'):
        return f"{style}{value}{style}"
    return value if yaml.safe_load(value) == value else f'"{value}"'


def plan(text: str, present: Collection[str], mapping: Mapping[str, str] | None = None) -> PortPlan:
    """Check the backup's config `text` against this box's ports `present`, apply `mapping`, validate.

    Raises PortMismatchError (ports missing, no mapping), PortMapError (a wrong mapping) or BackupError
    (the mapped config does not load). Pure: reads and writes nothing.
    """
    from appliance.config import parse_config
    from appliance.errors import ConfigError

    cfg = parse_config(text).model
    wanted = config_ports(cfg)
    final = check_mapping(wanted, present, mapping or {})
    renames = renames_for(cfg, final)
    if not renames:
        return PortPlan(tuple(wanted), tuple(sorted(present)), {}, text, text)
    mapped = rename_in_text(text, renames)
    try:
        new_cfg = parse_config(mapped).model
    except ConfigError as exc:
        raise BackupError(
            "ポートの対応を当てはめた設定が読み込めません（" + exc.text("ja") + "）。機器は変更していません",
            "the config with the port mapping does not load ("
            + exc.text("en")
            + "); the box was not changed",
            code="backup.port_map",
        ) from None
    expected = [renames.get(n, n) for n in _order(cfg)]
    if _order(new_cfg) != expected or new_cfg.ids.interfaces != [
        renames.get(n, n) for n in cfg.ids.interfaces
    ]:
        # The text is written in a way the in-place rename did not reach (YAML anchors, say): refuse
        # rather than restore a half-mapped config.
        log.error("backup: port mapping reached %s, expected %s", _order(new_cfg), expected)
        raise BackupError(
            "設定の書き方のため、ポートの対応を当てはめられませんでした。機器は変更していません",
            "the port mapping could not be applied to this config's text; the box was not changed",
            code="backup.port_map",
        )
    return PortPlan(tuple(wanted), tuple(sorted(present)), renames, mapped, text)
