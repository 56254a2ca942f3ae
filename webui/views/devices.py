"""機器一覧: the clinic's named devices (config hosts) with the zone each is in, and a CSV export.

CSV cells that start with = + - @ are prefixed with ' so that a spreadsheet never runs them as formulas
(a device description could come from anyone who can edit the config)."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, render_template

from appliance.config.references import zone_of_ip
from webui import context as wctx
from webui import core
from webui.context import requires
from webui.views.firewall import ZONE_NAMES

bp = Blueprint("devices", __name__, url_prefix="/devices")


def _rows() -> list[dict[str, str]] | None:
    cfg = core.live_config()
    if cfg is None:
        return None
    rows = []
    for h in cfg.hosts:
        zone = zone_of_ip(cfg, h.ip) if h.ip else None
        rows.append({"name": h.name, "ip": h.ip or "", "mac": h.mac or "", "zone": ZONE_NAMES.get(zone or "", "不明"),
                     "description": h.description})  # fmt: skip
    return rows


@bp.route("/")
@requires("devices.view")
def index() -> Any:
    return render_template("devices/index.html", rows=_rows())


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.route("/export.csv")
@requires("devices.view")
def export() -> Any:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["名前", "IPアドレス", "MACアドレス", "区画", "説明"])
    for r in _rows() or []:
        writer.writerow([_cell(r[k]) for k in ("name", "ip", "mac", "zone", "description")])
    wctx.audit("devices.export", {"rows": len(_rows() or [])})
    return Response(
        "\ufeff" + buf.getvalue(),  # BOM: Excel in Japan opens UTF-8 CSV correctly only with it
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=mamori-devices.csv"},
    )
