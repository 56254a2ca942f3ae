"""Device inventory (厚労省ガイドライン: 機器の台帳管理): every device seen on an internal zone.

Sources: dnsmasq's lease file (MAC, IP, hostname) and the kernel neighbour table (pyroute2), mapped to
zones through the config's interfaces; vendor from the IEEE OUI list. A MAC never seen before is
inserted once and raises one "new device" event (fw_device_events), however often it is seen again.
Lease hostnames come from the devices themselves (attacker-controlled): cleaned and cut, and malformed
lease lines are counted and logged.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.clock import show, wall
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from firewall.oui import vendor

log = logging.getLogger(__name__)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HOST_BAD = re.compile(r"[^\w.\-]")


@dataclass(frozen=True)
class Sighting:
    mac: str
    ip: str
    interface: str
    hostname: str = ""


def clean_hostname(raw: str) -> str:
    return "" if raw == "*" else _HOST_BAD.sub("", raw)[:63]


def parse_leases(text: str) -> tuple[list[Sighting], int]:
    """dnsmasq lease lines 'expiry mac ip hostname clientid' -> sightings (interface unknown), bad count."""
    out, bad = [], 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not _MAC.match(parts[1].lower()) or not parts[0].isdigit():
            bad += 1
            log.warning("malformed dnsmasq lease line: %r", line[:200])
            continue
        out.append(Sighting(parts[1].lower(), parts[2][:45], "", clean_hostname(parts[3])))
    return out, bad


def neighbours() -> list[Sighting]:
    """The kernel's neighbour table in this namespace: entries that have a MAC (resolved or stale)."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for n in ipr.get_neighbours():
            mac, dst = n.get_attr("NDA_LLADDR"), n.get_attr("NDA_DST")
            if (
                mac
                and dst
                and _MAC.match(mac.lower())
                and not int(mac[:2], 16) & 1
                and mac != "00:00:00:00:00:00"
            ):
                out.append(
                    Sighting(mac.lower(), dst, names.get(n["ifindex"], ""))
                )  # (multicast MACs skipped)
    return out


def ip_rank(ip: str) -> int:
    """Which address to show for a device seen with several: IPv4 > global IPv6 > link-local."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return 0
    if addr.version == 4:
        return 3
    return 1 if addr.is_link_local else 2


def best_per_mac(sightings: list[Sighting]) -> list[Sighting]:
    best: dict[str, Sighting] = {}
    for s in sightings:
        cur = best.get(s.mac)
        if cur is None or ip_rank(s.ip) > ip_rank(cur.ip):
            best[s.mac] = Sighting(
                s.mac,
                s.ip,
                s.interface or (cur.interface if cur else ""),
                s.hostname or (cur.hostname if cur else ""),
            )
        elif not cur.hostname and s.hostname:
            best[s.mac] = Sighting(cur.mac, cur.ip, cur.interface or s.interface, s.hostname)
    return list(best.values())


class Inventory:
    def __init__(self, ctx: Context, cfg: MamoriConfig) -> None:
        self.ctx = ctx
        self.zones = {i.name: i.zone for i in cfg.interfaces}
        self.tz = cfg.clinic.timezone  # for what a person reads (the CSV export)
        self.malformed = 0

    def leases_path(self) -> Path:
        return self.ctx.paths.state_dir / "dnsmasq.leases"

    def observe(self, sightings: list[Sighting], now: float | None = None) -> list[str]:
        """Record sightings on internal zones; returns the MACs seen for the first time (one event each)."""
        now = wall() if now is None else now
        new: list[str] = []
        with self.ctx.db.transaction() as conn:
            for s in best_per_mac(sightings):
                zone = self.zones.get(s.interface, "")
                if zone == "wan" or (s.interface and not zone):
                    continue  # the internet side and interfaces we do not manage are not clinic devices
                cur = conn.execute(
                    "INSERT OR IGNORE INTO fw_devices(mac, ip, zone, interface, hostname, vendor, first_seen, last_seen)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (s.mac, s.ip, zone, s.interface, s.hostname, vendor(s.mac), now, now),
                )
                if cur.rowcount:
                    new.append(s.mac)
                    ja = f"新しい機器が接続されました: {s.mac}（{vendor(s.mac) or 'メーカー不明'}、{s.ip}、{zone or '?'}）"
                    en = f"A new device was connected: {s.mac} ({vendor(s.mac) or 'unknown vendor'}, {s.ip}, {zone or '?'})"
                    conn.execute("INSERT INTO fw_device_events(ts, mac, kind, message_ja, message_en) VALUES (?,?,?,?,?)",
                                 (now, s.mac, "new_device", ja, en))  # fmt: skip
                    log.warning(en)
                else:
                    row = conn.execute("SELECT ip FROM fw_devices WHERE mac = ?", (s.mac,)).fetchone()
                    ip = s.ip if ip_rank(s.ip) >= ip_rank(row["ip"]) else row["ip"]
                    conn.execute(
                        "UPDATE fw_devices SET ip = ?, last_seen = ?, zone = CASE WHEN ? != '' THEN ? ELSE zone END,"
                        " interface = CASE WHEN ? != '' THEN ? ELSE interface END,"
                        " hostname = CASE WHEN ? != '' THEN ? ELSE hostname END WHERE mac = ?",
                        (ip, now, zone, zone, s.interface, s.interface, s.hostname, s.hostname, s.mac),
                    )
        return new

    def scan(self) -> list[str]:
        sightings = neighbours()
        path = self.leases_path()
        if path.exists():
            leases, bad = parse_leases(path.read_text(encoding="utf-8", errors="replace"))
            self.malformed += bad
            sightings += leases
        return self.observe(sightings)

    def devices(self) -> list[dict]:
        with self.ctx.db.connection() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM fw_devices ORDER BY zone, ip")]

    def events(self, limit: int = 100) -> list[dict]:
        with self.ctx.db.connection() as conn:
            rows = conn.execute("SELECT * FROM fw_device_events ORDER BY id DESC LIMIT ?", (limit,))
            return [dict(r) for r in rows]

    def csv(self) -> str:
        buf = io.StringIO()
        fields = ["mac", "vendor", "ip", "zone", "interface", "hostname", "first_seen", "last_seen"]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for d in self.devices():
            d["first_seen"] = show(d["first_seen"], self.tz, "%Y-%m-%d %H:%M:%S")
            d["last_seen"] = show(d["last_seen"], self.tz, "%Y-%m-%d %H:%M:%S")
            writer.writerow(d)
        return buf.getvalue()


class InventoryWorker:
    name = "firewall-inventory"

    def __init__(self, ctx: Context, cfg: MamoriConfig, interval: float = 30.0) -> None:
        self.inventory = Inventory(ctx, cfg)
        self.interval = interval

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.inventory.scan()
            stop.wait(self.interval)
