"""Live updates of the dynamic sets, one element at a time: block, quarantine, VPN admission.

Never rebuilds the table (that would cost a full transaction per address); firewall.apply re-seeds these
sets when the table is rebuilt. The kernel holds the truth about what is blocked and until when; SQLite
(fw_entries) holds why and by whom, and fw_history an append-only trail. Refuses to block an allowlisted
address or one of the clinic's own networks/gateway: an IDS false positive must not cut the clinic off.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.config.references import zone_networks
from appliance.errors import MamoriError
from appliance.subsystem import Context
from firewall import nftjson as nj
from firewall.nft import NftError, list_json, run_batch, sets_lock
from firewall.setnames import vpn_set_name

log = logging.getLogger(__name__)


class FirewallSetError(MamoriError):
    """A set update was refused (allowlisted or own address, not an address, not a clinic host...)."""

    code = "firewall.set"


@dataclass(frozen=True)
class Entry:
    ip: str
    expires_in: float | None  # seconds left, None = until removed
    reason: str
    source: str
    created_at: float | None


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise FirewallSetError(
            f"「{text}」はIPアドレスではありません（例: 198.51.100.66）",
            f"'{text}' is not an IP address (e.g. 198.51.100.66)",
            code="firewall.bad_ip",
        ) from None


def _elem(ip: str, timeout_s: float | None) -> Any:
    return {"elem": {"val": ip, "timeout": max(1, int(timeout_s))}} if timeout_s else ip


def _element_cmd(verb: str, set_name: str, elems: list[Any]) -> dict:
    return {verb: {"element": {"family": nj.FAMILY, "table": nj.TABLE, "name": set_name, "elem": elems}}}


class FirewallSets:
    """Element-by-element updates of `inet mamori`'s dynamic sets. Cheap to construct; reuse it anyway."""

    def __init__(self, ctx: Context, cfg: MamoriConfig | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg

    # -- guards ---------------------------------------------------------------------------------------
    def _protected(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[str, str] | None:
        if addr.is_loopback or addr.is_unspecified or addr.is_multicast or addr.is_link_local:
            return "特殊なアドレス", "a special-purpose address"
        if self.cfg is None:
            return None
        for net in self.cfg.firewall.allowlist:
            if addr in ipaddress.ip_network(net):
                return f"許可リスト（{net}）のアドレス", f"on the allowlist ({net})"
        for zone, nets in zone_networks(self.cfg).items():
            if zone != "wan" and any(addr in n for n in nets):
                return f"院内のネットワーク（{zone}）のアドレス", f"in the clinic's own network ({zone})"
        own = {ipaddress.ip_interface(a).ip for i in self.cfg.interfaces for a in (i.address, i.address6)
               if a and a != "dhcp"} | {ipaddress.ip_address(i.gateway) for i in self.cfg.interfaces if i.gateway}  # fmt: skip
        if addr in own:
            return "この機器自身またはゲートウェイのアドレス", "the box's own address or its gateway"
        return None

    # -- kernel ---------------------------------------------------------------------------------------
    def _add(self, set_name: str, ip: str, timeout_s: float | None) -> None:
        """Add or refresh in one transaction that cannot fail for an element present or absent: add (nothing
        if present), delete, add again with the new timeout (an existing element keeps its old timeout on add)."""
        elem = _elem(ip, timeout_s)
        cmds = [_element_cmd("add", set_name, [elem]), _element_cmd("delete", set_name, [ip]),
                _element_cmd("add", set_name, [elem])]  # fmt: skip
        run_batch({"nftables": cmds}, validate=False)

    def _delete(self, set_name: str, ip: str) -> bool:
        """Take `ip` out; False if it was not there (the kernel's ENOENT, not the wording of its message)."""
        try:
            run_batch({"nftables": [_element_cmd("delete", set_name, [ip])]}, validate=False)
        except NftError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def _history(self, action: str, ip: str, detail: str, source: str) -> None:
        with self.ctx.db.transaction() as conn:
            conn.execute("INSERT INTO fw_history(ts, action, ip, detail, source) VALUES (?, ?, ?, ?, ?)",
                         (wall(), action, ip, detail, source))  # fmt: skip

    def _remember(self, kind: str, ip: str, reason: str, source: str, timeout_s: float | None) -> None:
        now = wall()
        with self.ctx.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO fw_entries(kind, ip, reason, source, created_at, expires_at) VALUES (?,?,?,?,?,?)",
                (kind, ip, reason, source, now, now + timeout_s if timeout_s else None),
            )
            conn.execute("INSERT INTO fw_history(ts, action, ip, detail, source) VALUES (?, ?, ?, ?, ?)",
                         (now, kind, ip, reason, source))  # fmt: skip

    def _forget(self, kind: str, ip: str, source: str) -> None:
        with self.ctx.db.transaction() as conn:
            conn.execute("DELETE FROM fw_entries WHERE kind = ? AND ip = ?", (kind, ip))
            action = {"block": "unblock", "quarantine": "release"}[kind]
            conn.execute("INSERT INTO fw_history(ts, action, ip, detail, source) VALUES (?, ?, ?, '', ?)",
                         (wall(), action, ip, source))  # fmt: skip

    # -- public API -----------------------------------------------------------------------------------
    def block(self, ip: str, timeout_s: float | None, reason: str, source: str) -> str:
        """Drop everything from and to `ip` (live flows included) for timeout_s seconds (None: until unblocked)."""
        addr = parse_ip(ip)
        why = self._protected(addr)
        if why:
            raise FirewallSetError(
                f"{addr} は{why[0]}なので遮断できません",
                f"{addr} is {why[1]} and is never blocked",
                code="firewall.protected",
            )
        with sets_lock(self.ctx.paths.run_dir):
            self._add(f"blocked{addr.version}", str(addr), timeout_s)
        self._remember("block", str(addr), reason[:500], source[:64], timeout_s)
        log.info("blocked %s for %s s by %s: %s", addr, timeout_s, source, reason)
        return str(addr)

    def block_many(
        self, items: list[tuple[str, float | None, str]], source: str
    ) -> tuple[list[str], list[tuple[str, MamoriError]]]:
        """Block several (ip, timeout_s, reason) in one nft transaction and one database transaction.

        Added for the IDS under a flood (1,000 alerts/s): one `block` per address costs a database
        transaction each. Same guards as `block`; refused addresses come back with their error.
        The batch adds, deletes and re-adds every element, so present ones get their timeout renewed."""
        accepted: dict[str, list[tuple[str, float | None, str]]] = {}
        refused: list[tuple[str, MamoriError]] = []
        for ip, timeout_s, reason in items:
            try:
                addr = parse_ip(ip)
            except FirewallSetError as exc:
                refused.append((ip, exc))
                continue
            why = self._protected(addr)
            if why:
                refused.append((ip, FirewallSetError(f"{addr} は{why[0]}なので遮断できません",
                                                     f"{addr} is {why[1]} and is never blocked",
                                                     code="firewall.protected")))  # fmt: skip
                continue
            accepted.setdefault(f"blocked{addr.version}", []).append((str(addr), timeout_s, reason[:500]))
        if not accepted:
            return [], refused
        cmds = []
        for set_name, entries in accepted.items():
            elems = [_elem(ip, t) for ip, t, _ in entries]
            cmds += [_element_cmd("add", set_name, elems), _element_cmd("delete", set_name, [e[0] for e in entries]),
                     _element_cmd("add", set_name, elems)]  # fmt: skip
        with sets_lock(self.ctx.paths.run_dir):
            run_batch({"nftables": cmds}, validate=False)
        now = wall()
        done = [e for entries in accepted.values() for e in entries]
        with self.ctx.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO fw_entries(kind, ip, reason, source, created_at, expires_at) VALUES (?,?,?,?,?,?)",
                [("block", ip, reason, source[:64], now, now + t if t else None) for ip, t, reason in done],
            )
            conn.executemany("INSERT INTO fw_history(ts, action, ip, detail, source) VALUES (?, ?, ?, ?, ?)",
                             [(now, "block", ip, reason, source[:64]) for ip, _, reason in done])  # fmt: skip
        log.info("blocked %d addresses by %s", len(done), source)
        return [ip for ip, _, _ in done], refused

    def replace_feed(self, networks: list[str], source: str) -> int:
        """Replace the CIDR feed sets (e.g. a threat-intel list) whole, in one transaction.

        Refuses (typed error, nothing changed) a feed that overlaps the allowlist or the clinic's own
        networks: a bad feed must not cut the clinic off. Returns the number of entries now live."""
        parsed: dict[int, list] = {4: [], 6: []}
        for text in networks:
            try:
                net = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise FirewallSetError(f"フィードの「{text[:60]}」はネットワークではありません",
                                       f"feed entry '{text[:60]}' is not a network", code="firewall.bad_feed") from None  # fmt: skip
            why = self._protected_network(net)
            if why:
                raise FirewallSetError(f"フィードの {net} は{why[0]}と重なるため使えません",
                                       f"feed entry {net} overlaps {why[1]}", code="firewall.protected")  # fmt: skip
            parsed[net.version].append(net)
        cmds: list[dict] = []
        total = 0
        for version, nets in parsed.items():
            merged = [str(n) for n in ipaddress.collapse_addresses(nets)]  # nft refuses overlapping intervals
            total += len(merged)
            cmds.append(
                {"flush": {"set": {"family": nj.FAMILY, "table": nj.TABLE, "name": f"feed{version}"}}}
            )
            if merged:
                cmds.append(_element_cmd("add", f"feed{version}", [nj.addr_value(n) for n in merged]))
        with sets_lock(self.ctx.paths.run_dir):
            run_batch({"nftables": cmds}, validate=False)
        self._history("replace_feed", "-", f"{total} entries", source[:64])
        return total

    def _protected_network(
        self, net: ipaddress.IPv4Network | ipaddress.IPv6Network
    ) -> tuple[str, str] | None:
        if self.cfg is None:
            return None
        for allowed in map(ipaddress.ip_network, self.cfg.firewall.allowlist):
            if net.version == allowed.version and net.overlaps(allowed):
                return f"許可リスト（{allowed}）", f"the allowlist ({allowed})"
        for zone, nets in zone_networks(self.cfg).items():
            if zone != "wan" and any(net.version == own.version and net.overlaps(own) for own in nets):
                return f"院内のネットワーク（{zone}）", f"the clinic's own network ({zone})"
        own = {ipaddress.ip_interface(a).ip for i in self.cfg.interfaces for a in (i.address, i.address6)
               if a and a != "dhcp"} | {ipaddress.ip_address(i.gateway) for i in self.cfg.interfaces if i.gateway}  # fmt: skip
        if any(a.version == net.version and a in net for a in own):
            return "この機器自身またはゲートウェイのアドレス", "the box's own address or its gateway"
        return None

    def unblock(self, ip: str, source: str = "cli") -> bool:
        addr = parse_ip(ip)
        with sets_lock(self.ctx.paths.run_dir):
            present = self._delete(f"blocked{addr.version}", str(addr))
        self._forget("block", str(addr), source)
        return present

    def list_blocked(self) -> list[Entry]:
        return self._list("block", ("blocked4", "blocked6"))

    def quarantine(
        self, ip: str, timeout_s: float | None = None, reason: str = "", source: str = "cli"
    ) -> str:
        """Confine a clinic host: it may reach only the box's web UI (and DHCP) until released."""
        addr = parse_ip(ip)
        if addr.version != 4:
            raise FirewallSetError("隔離できるのは IPv4 アドレスだけです", "only IPv4 hosts can be quarantined",
                                   code="firewall.quarantine_v6")  # fmt: skip
        if self.cfg is not None:
            internal = [n for z, nets in zone_networks(self.cfg).items() if z != "wan" for n in nets]
            if not any(addr in n for n in internal):
                raise FirewallSetError(
                    f"{addr} は院内の機器ではありません。外部のアドレスは「遮断」してください",
                    f"{addr} is not a clinic host; block outside addresses instead",
                    code="firewall.quarantine_outside",
                )
        with sets_lock(self.ctx.paths.run_dir):
            self._add("quarantine4", str(addr), timeout_s)
        self._remember("quarantine", str(addr), reason[:500], source[:64], timeout_s)
        return str(addr)

    def release(self, ip: str, source: str = "cli") -> bool:
        addr = parse_ip(ip)
        with sets_lock(self.ctx.paths.run_dir):
            present = self._delete("quarantine4", str(addr))
        self._forget("quarantine", str(addr), source)
        return present

    def list_quarantined(self) -> list[Entry]:
        return self._list("quarantine", ("quarantine4",))

    def admit_vpn(self, user_name: str, ip: str, timeout_s: float | None) -> None:
        """Let a VPN session's tunnel address reach that user's access list, for the session's length."""
        addr = parse_ip(ip)
        with sets_lock(self.ctx.paths.run_dir):
            self._add(vpn_set_name(user_name), str(addr), timeout_s)
        self._history("admit_vpn", str(addr), user_name, "vpn")

    def revoke_vpn(self, user_name: str, ip: str) -> bool:
        addr = parse_ip(ip)
        with sets_lock(self.ctx.paths.run_dir):
            present = self._delete(vpn_set_name(user_name), str(addr))
        self._history("revoke_vpn", str(addr), user_name, "vpn")
        return present

    def _list(self, kind: str, set_names: tuple[str, ...]) -> list[Entry]:
        live: dict[str, float | None] = {}
        for name in set_names:
            for obj in list_json(f"list set {nj.FAMILY} {nj.TABLE} {name}") or []:
                for e in obj.get("set", {}).get("elem", []):
                    if isinstance(e, dict) and "elem" in e:
                        live[str(e["elem"]["val"])] = float(e["elem"].get("expires", 0)) or None
                    else:
                        live[str(e)] = None
        with self.ctx.db.connection() as conn:
            rows = {r["ip"]: r for r in conn.execute("SELECT * FROM fw_entries WHERE kind = ?", (kind,))}
        return [Entry(ip, left, rows[ip]["reason"] if ip in rows else "", rows[ip]["source"] if ip in rows else "",
                      rows[ip]["created_at"] if ip in rows else None) for ip, left in sorted(live.items())]  # fmt: skip


def reseed_from_records(ctx: Context, now: float | None = None) -> int:
    """Put the recorded blocks and quarantines back into a freshly created table (after a reboot, a crash
    of the whole box, or a restore from backup), each with the time it has left. Returns how many."""
    now = wall() if now is None else now
    ctx.db.migrate()  # a box's very first apply may come before anything else created the tables
    with ctx.db.connection() as conn:
        rows = conn.execute(
            "SELECT kind, ip, expires_at FROM fw_entries WHERE expires_at IS NULL OR expires_at > ?", (now,)
        ).fetchall()
    by_set: dict[str, list[Any]] = {}
    for kind, ip, expires_at in rows:
        version = ipaddress.ip_address(ip).version
        name = {"block": f"blocked{version}", "quarantine": "quarantine4"}.get(kind)
        if name is None or (kind == "quarantine" and version != 4):
            continue
        by_set.setdefault(name, []).append(_elem(ip, expires_at - now if expires_at else None))
    if by_set:
        run_batch({"nftables": [_element_cmd("add", name, elems) for name, elems in sorted(by_set.items())]})
    return sum(len(v) for v in by_set.values())
