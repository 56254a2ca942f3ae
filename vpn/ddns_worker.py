"""Daemon worker `vpn-ddns`: watches the WAN's global IPv6 address and keeps `vpn.endpoint6` pointing at it.

It publishes at start, whenever the address changes (a new prefix after the home gateway renumbered), and
every REFRESH_S as a refresh (a server restored from backup, a record removed by hand). A failed update is
retried with back-off; one that lasts ALERT_AFTER_S is written to the audit log (`vpn.ddns.failing`, which
vpn/notices.py turns into a message to the clinic) once, and its end (`vpn.ddns.recovered`) too. Each new
address published is audited (`vpn.ddns.updated`). The state (what was published when, the last error in
Japanese and English) is one JSON value in the kv table, read by `mamori vpn ddns status` and the VPN page.
Times come from appliance.clock.wall: they are shown to people and survive restarts.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from appliance.audit import AuditLog
from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from vpn.ddns import DdnsError, WanAddress, load_secret, pick_address, publish, wan_interface

log = logging.getLogger(__name__)
STATE_KEY = "vpn.ddns"
POLL_S = 5.0
REFRESH_S = 3600.0
RETRY_FIRST_S, RETRY_MAX_S = 30.0, 900.0
ALERT_AFTER_S = 1800.0


@dataclass(frozen=True)
class DdnsState:
    """What the box last did with its name. `address` is what the server holds since `published_at`."""

    name: str = ""
    address: str = ""
    published_at: float | None = None
    tried_at: float | None = None
    tried_address: str = ""
    failures: int = 0
    failing_since: float | None = None
    error_ja: str = ""
    error_en: str = ""
    alerted: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self, tz: str, lang: str = "ja") -> list[str]:
        """Plain sentences for the VPN page and the CLI."""
        from appliance.clock import show

        at = show(self.published_at, tz, "%Y/%m/%d %H:%M", "")
        en = lang == "en"
        out = []
        if self.address:
            out.append(f"IPv6 name {self.name} → {self.address} (updated {at})" if en else
                       f"IPv6 の名前 {self.name} は {self.address} を指しています（{at} に更新）")  # fmt: skip
        if self.error_ja:
            since = show(self.failing_since, tz, "%Y/%m/%d %H:%M", "")
            out.append(f"the IPv6 name cannot be updated since {since}: {self.error_en}" if en else
                       f"IPv6 の名前を更新できていません（{since} から）：{self.error_ja}")  # fmt: skip
        if not out:
            out.append(
                "the IPv6 name has not been updated yet" if en else "IPv6 の名前はまだ更新していません"
            )
        return out


def load_state(ctx: Context) -> DdnsState:
    raw = ctx.db.get_kv(STATE_KEY)
    if not raw:
        return DdnsState()
    data = json.loads(raw)
    return DdnsState(**{k: v for k, v in data.items() if k in DdnsState.__dataclass_fields__})


def save_state(ctx: Context, state: DdnsState) -> None:
    ctx.db.set_kv(STATE_KEY, json.dumps(state.to_dict(), ensure_ascii=False))


def wan_addresses(ifname: str) -> list[WanAddress]:
    """The IPv6 addresses on `ifname` (pyroute2), with their flags and preferred lifetime."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)
        if not index:
            return []
        for msg in ipr.get_addr(family=socket.AF_INET6, index=index[0]):
            flags = msg.get_attr("IFA_FLAGS")
            cache = msg.get_attr("IFA_CACHEINFO")
            preferred = cache["ifa_preferred"] if cache else 0xFFFFFFFF
            out.append(
                WanAddress(msg.get_attr("IFA_ADDRESS"), msg["flags"] if flags is None else flags, preferred)
            )
    return out


def _retry_after(failures: int) -> float:
    return min(RETRY_FIRST_S * 2 ** max(failures - 1, 0), RETRY_MAX_S)


class DdnsUpdater:
    """One step of the watch: decide, publish, record. Separate from the thread so tests drive it."""

    def __init__(
        self,
        ctx: Context,
        cfg: MamoriConfig,
        addresses: Callable[[str], list[WanAddress]] = wan_addresses,
        send: Callable[..., None] = publish,
    ) -> None:
        self.ctx, self.cfg, self.addresses, self.send = ctx, cfg, addresses, send
        self.audit = AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key")

    def _due(self, state: DdnsState, current: str | None, now: float) -> bool:
        if state.failures and state.tried_address == (current or "") and state.tried_at is not None:
            # a clock stepped back (e.g. set right after TSIG's BADTIME) is no reason to wait until it is back
            return now < state.tried_at or now - state.tried_at >= _retry_after(state.failures)
        if current is None:
            return True  # no address: recorded as a failure (at the retry pace above)
        if current != state.address or state.name != self.cfg.vpn.endpoint6:
            return True
        return state.published_at is None or now - state.published_at >= REFRESH_S or now < state.published_at

    def step(self, force: bool = False) -> DdnsState:
        """Publish if due (or `force`); returns the state after."""
        d, name = self.cfg.vpn.ddns, self.cfg.vpn.endpoint6
        assert d is not None
        now = wall()
        state = load_state(self.ctx)
        ifname = wan_interface(self.cfg) or ""
        current = pick_address(self.addresses(ifname)) if ifname else None
        if not force and not self._due(state, current, now):
            return state
        try:
            if current is None:
                raise DdnsError(f"WAN（{ifname}）にインターネットで使える IPv6 アドレスがありません（回線の IPv6 を確かめてください）",
                                f"no global IPv6 address on the WAN ({ifname})")  # fmt: skip
            self.send(d, name, current, load_secret(self.ctx.paths.keys_dir))
        except DdnsError as exc:
            return self._failed(state, name, current or "", now, exc)
        return self._published(state, name, current, now)

    def _published(self, state: DdnsState, name: str, address: str, now: float) -> DdnsState:
        new = DdnsState(name=name, address=address, published_at=now, tried_at=now, tried_address=address)
        if (address, name) != (state.address, state.name):
            log.info("vpn ddns: %s -> %s", name, address)
            self.audit.record("system", "vpn.ddns.updated", {"name": name, "address": address,
                              "previous": state.address}, source="daemon")  # fmt: skip
        if state.alerted:
            self.audit.record(
                "system", "vpn.ddns.recovered", {"name": name, "address": address}, source="daemon"
            )
        save_state(self.ctx, new)
        return new

    def _failed(self, state: DdnsState, name: str, address: str, now: float, exc: DdnsError) -> DdnsState:
        log.warning("vpn ddns: %s: %s", name, exc.text("en"))
        since = state.failing_since if state.failing_since is not None and state.failures else now
        since = min(since, now)  # the clock stepped back: count the failure's time from now
        new = replace(state, name=name, tried_at=now, tried_address=address, failures=state.failures + 1,
                      failing_since=since, error_ja=exc.text("ja"), error_en=exc.text("en"))  # fmt: skip
        if not state.alerted and now - since >= ALERT_AFTER_S:
            self.audit.record("system", "vpn.ddns.failing", {"name": name, "error": exc.text("ja"),
                              "since": since}, source="daemon")  # fmt: skip
            new = replace(new, alerted=True)
        save_state(self.ctx, new)
        return new


class DdnsWorker:
    """Daemon worker: one DdnsUpdater step at start and every POLL_S."""

    name = "vpn-ddns"

    def __init__(self, ctx: Context, cfg: MamoriConfig, poll: float = POLL_S) -> None:
        self.updater, self.poll = DdnsUpdater(ctx, cfg), poll

    def run(self, stop: threading.Event) -> None:
        while True:
            try:
                self.updater.step()
            except OSError as exc:  # netlink or the database; the next poll tries again
                log.warning("vpn ddns: %s", exc)
            if stop.wait(self.poll):
                return
