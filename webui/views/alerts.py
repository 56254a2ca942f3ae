"""アラート: incidents with filters; detail with the plain-Japanese explanation; acknowledge / resolve /
block / unblock. Everything shown from an alert (signature, hostnames, URLs, user agents) came from the
network and is rendered only through Jinja autoescape."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.config.references import zone_of_ip
from ids.explain import explain
from webui import context as wctx
from webui import core, incident_actions, sources
from webui.context import requires

bp = Blueprint("alerts", __name__, url_prefix="/alerts")
HTTP_FIELDS = (("hostname", "ホスト名"), ("url", "URL"), ("http_user_agent", "ブラウザーの名乗り"),
               ("http_method", "方式"), ("status", "応答"))  # fmt: skip


def decorate(inc: dict[str, Any]) -> dict[str, Any]:
    exp = explain(inc["sid"], inc.get("category", ""), inc["severity"], inc.get("signature", ""))
    return {**inc, "title": exp.title, "explanation": exp, "severity_label": exp.importance}


@bp.route("/")
@requires("alerts.view")
def index() -> Any:
    state = request.args.get("state", "open")
    severity = request.args.get("severity", type=int)
    text = request.args.get("q", "").strip()[:200] or None
    rows = sources.incidents(wctx.ctx().db, state=state, severity=severity, text=text)
    return render_template(
        "alerts/index.html",
        incidents=None if rows is None else [decorate(r) for r in rows],
        state=state, severity=severity, q=text or "", states=sources.STATES,
    )  # fmt: skip


@bp.route("/<int:incident_id>")
@requires("alerts.view")
def detail(incident_id: int) -> Any:
    found = sources.incident(wctx.ctx().db, incident_id)
    if found is None:
        abort(404)
    inc, alerts = found
    for alert in alerts:
        alert["fields"] = _alert_fields(alert.get("detail") or "{}")
    return render_template(
        "alerts/detail.html", inc=decorate(inc), alerts=alerts, http_fields=HTTP_FIELDS,
        can_block=incident_actions.blocking_available(), blocked=incident_actions.is_blocked(wctx.ctx().db, inc["src_ip"], wctx.now()),
        external=_external(inc["src_ip"]),
    )  # fmt: skip


def _external(ip: str) -> bool:
    """Outside the clinic = in none of the box's internal networks (documentation ranges count as outside)."""
    cfg = core.live_config()
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return cfg is None or zone_of_ip(cfg, ip) is None


def _alert_fields(detail: str) -> dict[str, str]:
    """HTTP/DNS/TLS fields of one alert, flattened to short strings (still untrusted, escaped in HTML)."""
    try:
        data = json.loads(detail)
    except json.JSONDecodeError:
        return {}
    out: dict[str, str] = {}
    for section in ("http", "dns", "tls"):
        part = data.get(section)
        if isinstance(part, dict):
            for key, value in part.items():
                if isinstance(value, str | int):
                    out[key] = str(value)[:500]
    return out


@bp.route("/<int:incident_id>/<action>", methods=["POST"])
def act(incident_id: int, action: str) -> Any:
    needed = {
        "ack": "alerts.ack",
        "resolve": "alerts.manage",
        "block": "alerts.manage",
        "unblock": "alerts.manage",
    }
    if action not in needed:
        abort(404)
    return requires(needed[action])(_act)(incident_id, action)


def _act(incident_id: int, action: str) -> Any:
    found = sources.incident(wctx.ctx().db, incident_id)
    if found is None:
        abort(404)
    inc = found[0]
    who = wctx.user().name
    if action in ("ack", "resolve"):
        state = "確認済み" if action == "ack" else "解決済み"
        incident_actions.set_state(wctx.ctx().db, incident_id, state, who)
        wctx.audit(f"alerts.{action}", {"incident": incident_id, "state": state})
        flash(f"「{state}」にしました。", "ok")
    else:
        incident_actions.block(wctx.ctx(), inc, unblock=(action == "unblock"), actor=who)
        wctx.audit(f"alerts.{action}", {"incident": incident_id, "ip": inc["src_ip"]})
        flash("遮断しました。" if action == "block" else "遮断を解除しました。", "ok")
    return redirect(url_for("alerts.detail", incident_id=incident_id))
