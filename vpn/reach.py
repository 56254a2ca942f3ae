"""Can a doctor's handshake reach the box from outside, by IPv4, by IPv6, through the relay? (issue 17)

The proof is a real WireGuard handshake from outside: the vendor's hub runs `fleet/relay/probe` on a timer
(docs/vpn-lines.md). It holds three probe keys whose public halves are `vpn.probe` (ipv4, ipv6, link); each is
a peer of the box's VPN interface with no AllowedIPs, so it can complete a handshake and nothing more (no
packet from it is ever accepted into the tunnel). One probe round tries the box's public IPv4 endpoint, then
its IPv6 endpoint, then the box's management-link address (the relay's way in). The box watches the probe
peers' latest handshakes (`wg show dump`) and records each new one here with the time it saw it; the link
probe is the control that a round ran, so "no IPv4 handshake since the last round" means IPv4 does not get
in, not "nobody tried".

Scope: this module reads the interface and its own table (`vpn_reach`); it changes nothing on the box.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass

from appliance.clock import show, wall
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.subsystem import Context
from vpn.lines import Reach, choose_path, relay_ready
from vpn.wg import DumpState, WgInterface

log = logging.getLogger(__name__)

FAMILIES = ("ipv4", "ipv6", "link")
ROUND_S = 300.0  # a probe round takes seconds; a family's handshake this long before the link's is stale
KEEP_ROWS = 2000  # every new handshake is a row: a probe every 10 minutes for a month and more
POLL_S = 10.0


@dataclass(frozen=True)
class FamilyResult:
    """One way in: "ok" (a handshake got in at `at`), "ng" (a probe round at `at` did not get in),
    "unknown" (no probe round seen yet) or, for the relay, "off" (no relay endpoint or no management link)."""

    family: str
    state: str
    at: float | None = None
    endpoint: str = ""


@dataclass(frozen=True)
class ReachStatus:
    ipv4: FamilyResult
    ipv6: FamilyResult
    link: FamilyResult
    path: str  # what a doctor's config issued now would use (vpn/lines.py)
    port: int

    def as_reach(self) -> Reach:
        def b(r: FamilyResult) -> bool | None:
            return None if r.state == "unknown" else r.state == "ok"

        return Reach(ipv4=b(self.ipv4), ipv6=b(self.ipv6))

    def messages(self, lang: str = "ja") -> list[str]:
        return [_message(r, self.port, lang) for r in (self.ipv4, self.ipv6, self.link)] + [
            _path_line(self.path, lang)
        ]

    def to_dict(self) -> dict:
        return asdict(self)


_LABEL = {"ipv4": "IPv4", "ipv6": "IPv6"}


def _message(r: FamilyResult, port: int, lang: str) -> str:
    en = lang == "en"
    if r.family == "link":
        return {
            "ok": "relay via the vendor's hub: works" if en else "保守業者のハブ経由の中継でも接続できます",
            "ng": "relay via the vendor's hub: does not work"
            if en
            else "保守業者のハブ経由の中継は使えません",
            "unknown": "relay: not checked yet" if en else "中継はまだ確認していません",
            "off": "relay via the vendor's hub: not set up"
            if en
            else "保守業者のハブ経由の中継は設定されていません",
        }[r.state]
    label = _LABEL[r.family]
    if r.state == "ok":
        return f"reachable from home ({label})" if en else f"ご自宅から接続できます（{label}）"
    if r.state == "unknown":
        return (f"{label}: not checked yet (waiting for the hub's probe)" if en
                else f"{label} はまだ確認していません（保守業者のハブからの確認を待っています）")  # fmt: skip
    if r.family == "ipv4":
        return (f"not reachable over IPv4: forward UDP port {port} on the router to this box" if en
                else f"IPv4 では接続できません：ルーターでUDP {port}番を転送してください")  # fmt: skip
    return (f"not reachable over IPv6: allow UDP port {port} to this box in the router's IPv6 filter" if en
            else f"IPv6 では接続できません：ルーターの IPv6 フィルタで本機あての UDP {port}番を許可してください")  # fmt: skip


def _path_line(path: str, lang: str) -> str:
    en = {"direct": "direct (IPv4)", "ipv6": "IPv6", "relay": "relay via the vendor's hub"}
    ja = {"direct": "直接（IPv4）", "ipv6": "IPv6 で直接", "relay": "保守業者のハブ経由の中継"}
    return (
        f"new device configs use: {en[path]}" if lang == "en" else f"新しく発行する設定の接続経路: {ja[path]}"
    )


def record(ctx: Context, cfg: MamoriConfig, state: DumpState) -> int:
    """Write each probe peer's handshake not recorded yet; returns how many rows were added."""
    if cfg.vpn.probe is None:
        return 0
    now = wall()
    added = 0
    with ctx.db.connection() as conn:
        for family, key in cfg.vpn.probe.model_dump().items():
            peer = state.peers.get(key)
            if peer is None or peer.allowed_ips or peer.latest_handshake <= 0:  # a device's key is no probe
                continue
            seen = conn.execute(
                "SELECT 1 FROM vpn_reach WHERE family = ? AND handshake_at = ?",
                (family, peer.latest_handshake),
            ).fetchone()
            if seen is None:
                conn.execute(
                    "INSERT INTO vpn_reach (ts, family, handshake_at, endpoint) VALUES (?, ?, ?, ?)",
                    (now, family, float(peer.latest_handshake), peer.endpoint or ""),
                )
                added += 1
        if added:
            conn.execute(
                "DELETE FROM vpn_reach WHERE id NOT IN (SELECT id FROM vpn_reach ORDER BY id DESC LIMIT ?)",
                (KEEP_ROWS,),
            )
    return added


def observe(ctx: Context, cfg: MamoriConfig, iface: WgInterface | None = None) -> int:
    """Read the live interface (if it is up) and record new probe handshakes."""
    iface = iface or WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)
    if not cfg.vpn.enabled or cfg.vpn.probe is None or not iface.exists():
        return 0
    return record(ctx, cfg, iface.dump())


def status(ctx: Context, cfg: MamoriConfig) -> ReachStatus:
    """The verdict per family from the recorded handshakes (pure reading of the table)."""
    last: dict[str, tuple[float, str]] = {}
    with ctx.db.connection() as conn:
        for family in FAMILIES:
            row = conn.execute(
                "SELECT handshake_at, endpoint FROM vpn_reach WHERE family = ? ORDER BY handshake_at DESC LIMIT 1",
                (family,),
            ).fetchone()
            if row is not None:
                last[family] = (row["handshake_at"], row["endpoint"])
    link_at = last.get("link", (None, ""))[0]

    def verdict(family: str) -> FamilyResult:
        at, endpoint = last.get(family, (None, ""))
        if at is not None and (link_at is None or at >= link_at - ROUND_S):
            return FamilyResult(family, "ok", at, endpoint)
        if link_at is not None:
            return FamilyResult(family, "ng", link_at)
        return FamilyResult(family, "unknown")

    link = FamilyResult("link", "ok", link_at, last["link"][1]) if link_at is not None else \
        FamilyResult("link", "unknown")  # fmt: skip
    v4, v6 = verdict("ipv4"), verdict("ipv6")
    path = choose_path(cfg, Reach(ipv4=_bool(v4), ipv6=_bool(v6)))
    if not relay_ready(cfg):  # the link probe still proves a round ran; the relay itself is not set up
        link = FamilyResult("link", "off", link.at)
    return ReachStatus(v4, v6, link, path, cfg.vpn.listen_port)


def _bool(r: FamilyResult) -> bool | None:
    return None if r.state == "unknown" else r.state == "ok"


def check(ctx: Context, cfg: MamoriConfig, iface: WgInterface | None = None) -> ReachStatus:
    """`mamori vpn reach`: record what the interface shows now, then the verdict."""
    try:
        observe(ctx, cfg, iface)
    except MamoriError as exc:  # the table still answers with what was seen before
        log.warning("vpn reach: the interface could not be read: %s", exc.text("en"))
    return status(ctx, cfg)


def when(ts: float | None, tz: str) -> str:
    return show(ts, tz, "%Y-%m-%d %H:%M", "—")


class ReachWorker:
    """Daemon worker: records probe handshakes as they happen, so a restart of the interface loses none."""

    name = "vpn-reach"

    def __init__(self, ctx: Context, cfg: MamoriConfig, interval: float = POLL_S) -> None:
        self.ctx, self.cfg, self.interval = ctx, cfg, interval
        self.iface = WgInterface(cfg.vpn.interface, run_dir=ctx.paths.run_dir)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                observe(self.ctx, self.cfg, self.iface)
            except MamoriError as exc:
                log.warning("vpn reach: %s", exc.text("en"))
