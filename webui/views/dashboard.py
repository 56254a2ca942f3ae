"""ダッシュボード: is everything all right, and if not, what should the clinic do now."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, render_template

from appliance.clock import show
from webui import context as wctx
from webui import core, sources
from webui.context import requires
from webui.status import traffic_light, versions

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@requires("dashboard.view")
def index() -> Any:
    db = wctx.ctx().db
    now = wctx.now()
    open_counts = sources.open_incident_count(db)
    audit_ok = _audit_ok(now)
    svc = core.service()
    pending = svc.pending()
    counts = sources.alert_counts(db, now)
    new_devices = sources.new_device_events(db, now - 7 * 86400)
    chart = None
    if counts is not None:
        tz = core.clinic_zone()
        hours = [show(now - (23 - i) * 3600, tz, "%H時") for i in range(24)]
        days = [show(now - (6 - i) * 86400, tz, "%m/%d") for i in range(7)]
        chart = {
            "hourly": json.dumps({"labels": hours, "values": counts.hourly}),
            "daily": json.dumps({"labels": days, "values": counts.daily}),
        }
    return render_template(
        "dashboard/index.html",
        light=traffic_light(open_counts, audit_ok, pending is not None, len(new_devices or [])),
        new_devices=new_devices,
        backup=sources.backup_status(db),
        incidents=_open_incidents(db),
        counts=counts,
        chart=chart,
        vpn_online=sources.vpn_sessions_open(db, now),
        blocks=sources.active_blocks(db, now, limit=10),
        last_change=(svc.history(1) or [None])[0],
        versions=versions(),
        tls=_tls(now),
        rules_warning=_rules_warning(now),
        notify_trouble=_notify_trouble(db, now),
        box_notices=_box_notices(now),
    )


_VERIFY_CACHE: dict[str, tuple[float, bool]] = {}
VERIFY_EVERY = 60.0


def _audit_ok(now: float) -> bool:
    """The full chain check costs O(entries); the dashboard repeats it at most once a minute per box.
    The 監査ログ page always checks afresh."""
    key = str(wctx.ctx().db.path)
    cached = _VERIFY_CACHE.get(key)
    if cached is None or not (0 <= now - cached[0] < VERIFY_EVERY):
        cached = (now, wctx.audit_log().verify().ok)
        _VERIFY_CACHE[key] = cached
    return cached[1]


def _box_notices(now: float) -> list[dict[str, str]]:
    """The state disk when it is nearly or quite full, and a clock step of the last days (appliance.disk,
    appliance.clockwatch): both read without writing, so they show even on a full disk."""
    from appliance.clockwatch import current_notice
    from appliance.disk import disk_state

    notices = []
    disk = disk_state(wctx.ctx().paths.state_dir)
    if disk.level != "ok":
        notices.append({"level": "warn" if disk.level == "warn" else "error", "text": disk.text_ja()})
    clock_notice = current_notice(wctx.ctx(), now)
    if clock_notice is not None:
        cfg = core.live_config()
        notices.append({"level": "info", "text": clock_notice.text_ja(cfg.clinic.timezone if cfg else None)})
    return notices


def _notify_trouble(db: Any, now: float) -> str | None:
    """「通知を送れていません（メール: 接続できません）」 when a channel has not delivered for 10 minutes."""
    from appliance.notify.outbox import trouble_text, troubles

    return trouble_text(troubles(db, now))


def _tls(now: float) -> dict[str, Any]:
    """The web certificate: its fingerprint (small, for the vendor), a renewal notice for some days, and a
    warning when an uploaded one is about to end (webui.tls_renew)."""
    from webui.tls import read_certificate
    from webui.tls_renew import expiry_warning, renewal_notice

    info = read_certificate(wctx.ctx().paths.keys_dir)
    cfg = core.live_config()
    tz = cfg.clinic.timezone if cfg else None
    notices = [n for n in (renewal_notice(wctx.ctx(), info, now), expiry_warning(info, now, tz)) if n]
    return {"fingerprint": info.fingerprint if info else None, "notices": notices}


def _rules_warning(now: float) -> str | None:
    """「侵入検知のルールが N 日間更新されていません」 past ids.rules_max_age_days (asked of the ids area)."""
    from ids.freshness import rules_warning

    return rules_warning(wctx.ctx().paths, core.live_config(), now)


def _open_incidents(db: Any) -> list[dict[str, Any]] | None:
    from webui.views.alerts import decorate

    rows = sources.incidents(db, state="open", limit=5)
    return None if rows is None else [decorate(r) for r in rows]
