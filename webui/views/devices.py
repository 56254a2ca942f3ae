"""機器一覧: the clinic's devices — the ones named in the config and the ones the firewall area's inventory
has actually seen (MAC, maker, address, zone, first/last seen) — with a CSV export.

Hostnames in the inventory come from the devices themselves (DHCP): shown escaped, and CSV cells that
start with = + - @ are prefixed with ' so that a spreadsheet never runs them as formulas.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, render_template

from appliance.clock import show
from appliance.config.references import zone_of_ip
from appliance.zones import zone_label
from webui import context as wctx
from webui import core, sources
from webui.context import requires

bp = Blueprint("devices", __name__, url_prefix="/devices")
COLUMNS = (("name", "名前"), ("ip", "IPアドレス"), ("mac", "MACアドレス"), ("vendor", "メーカー"), ("zone", "区画"),
           ("hostname", "機器が名乗った名前"), ("first_seen", "最初に見た日時"), ("last_seen", "最後に見た日時"),
           ("description", "説明"))  # fmt: skip


def _rows() -> list[dict[str, Any]] | None:
    """One row per device: inventory sightings named after the config host with the same MAC or IP;
    named hosts never seen are listed too (first/last seen empty)."""
    cfg = core.live_config()
    seen = sources.seen_devices(wctx.ctx().db) or []
    if cfg is None and not seen:
        return None
    hosts = list(cfg.hosts) if cfg else []
    rows: list[dict[str, Any]] = []
    matched: set[str] = set()
    for d in seen:
        host = next((h for h in hosts if (h.mac and h.mac == d["mac"]) or (h.ip and h.ip == d["ip"])), None)
        if host:
            matched.add(host.name)
        rows.append({"name": host.name if host else "", "ip": d["ip"], "mac": d["mac"], "vendor": d["vendor"],
                     "zone": zone_label(d["zone"]), "hostname": d["hostname"],
                     "first_seen": d["first_seen"], "last_seen": d["last_seen"],
                     "description": host.description if host else ""})  # fmt: skip
    for h in hosts:
        if h.name not in matched:
            zone = zone_of_ip(cfg, h.ip) if (cfg and h.ip) else None
            rows.append({"name": h.name, "ip": h.ip or "", "mac": h.mac or "", "vendor": "", "hostname": "",
                         "zone": zone_label(zone), "first_seen": None, "last_seen": None,
                         "description": h.description})  # fmt: skip
    return rows


@bp.route("/")
@requires("devices.view")
def index() -> Any:
    return render_template(
        "devices/index.html", rows=_rows(), inventory=sources.seen_devices(wctx.ctx().db) is not None
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return show(value, core.clinic_zone())
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.route("/export.csv")
@requires("devices.view")
def export() -> Any:
    rows = _rows() or []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([label for _, label in COLUMNS])
    for r in rows:
        writer.writerow([_cell(r[key]) for key, _ in COLUMNS])
    wctx.audit("devices.export", {"rows": len(rows)})
    return Response(
        "\ufeff" + buf.getvalue(),  # BOM: Excel in Japan opens UTF-8 CSV correctly only with it
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=mamori-devices.csv"},
    )
