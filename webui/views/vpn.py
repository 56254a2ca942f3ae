"""VPN: users (from the config), their devices, a new device's QR shown exactly once, sessions online,
and the vendor maintenance windows the clinic approves. Devices and windows are the VPN area's state
(vpn.store, vpn.windows); adding a user is a config change and goes through the review page."""

from __future__ import annotations

import logging
from typing import Any

import yaml
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.errors import MamoriError
from webui import changes, core, sources
from webui import context as wctx
from webui.context import requires
from webui.qr import svg

log = logging.getLogger(__name__)
bp = Blueprint("vpn", __name__, url_prefix="/vpn")
VPN_ROLE_LABELS = {"doctor": "医師", "staff": "職員", "vendor": "保守業者"}


def _windows() -> Any:
    try:
        from vpn.windows import WindowStore
    except ImportError:
        return None
    return WindowStore(wctx.ctx().db, clock=wctx.now)


@bp.route("/")
@requires("vpn.view")
def index() -> Any:
    cfg = core.live_config()
    db, now = wctx.ctx().db, wctx.now()
    store = _windows()
    return render_template(
        "vpn/index.html", cfg=cfg, devices=sources.vpn_devices(db), online=sources.vpn_sessions_open(db, now),
        recent=sources.vpn_sessions_recent(db),
        windows=store.list(limit=50) if store else None, vpn_role_labels=VPN_ROLE_LABELS, now=now,
    )  # fmt: skip


@bp.route("/devices", methods=["POST"])
@requires("vpn.edit")
def add_device() -> Any:
    """Issue a device config: the private key is made here and shown once, as text and QR, never stored."""
    cfg = core.live_config()
    if cfg is None or not cfg.vpn.enabled:
        flash("VPN が有効になっていません。", "warn")
        return redirect(url_for("vpn.index"))
    user = request.form.get("user", "")
    device = request.form.get("device", "").strip()[:32]
    try:
        from vpn.provision import provision
        from vpn.subsystem import VpnSubsystem

        sub = VpnSubsystem(wctx.ctx())
        issued = provision(wctx.ctx(), cfg, user, device, iface=sub.interface(sub.render(cfg)))
    except ImportError:
        abort(404)
    except MamoriError as exc:
        flash(exc.text("ja"), "error")
        return redirect(url_for("vpn.index"))
    wctx.audit("vpn.device_added", {"user": user, "device": device, "ip": issued.device.ip4})
    return render_template(
        "vpn/issued.html", user=user, device=device, conf=issued.conf, qr=svg(issued.conf, 4)
    )


@bp.route("/users", methods=["POST"])
@requires("vpn.edit")
def add_user() -> Any:
    text = core.live_text()
    if text is None:
        abort(409)
    data = yaml.safe_load(text)
    vpn = data.setdefault("vpn", {})
    user: dict[str, Any] = {
        "name": request.form.get("name", "").strip(),
        "role": request.form.get("role", ""),
    }
    if request.form.get("display_name", "").strip():
        user["display_name"] = request.form["display_name"].strip()
    dst = request.form.get("dst", "").strip()
    if dst:
        access = {"dst": dst}
        if request.form.get("service", "").strip():
            access["service"] = request.form["service"].strip()
        user["access"] = [access]
    vpn.setdefault("users", []).append(user)
    new_text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    token = changes.propose(new_text, f"VPN 利用者「{user['name']}」を追加", "vpn.edit")
    return redirect(url_for("settings.review", token=token))


@bp.route("/windows", methods=["POST"])
@requires("vpn.edit")
def approve_window() -> Any:
    store = _windows()
    if store is None:
        abort(404)
    user = request.form.get("user", "")
    targets = [t.strip() for t in request.form.get("targets", "").split(",") if t.strip()]
    try:
        hours = float(request.form.get("hours", "2"))
        window = store.approve_next(user, hours, request.form.get("reason", ""), targets, wctx.user().name)
    except ValueError:
        flash("時間は数字で入力してください。", "error")
        return redirect(url_for("vpn.index"))
    except MamoriError as exc:
        flash(exc.text("ja"), "error")
        return redirect(url_for("vpn.index"))
    wctx.audit("vpn.window_approved", {"window": window.id, "user": user, "hours": hours, "targets": targets})
    flash(f"保守作業の時間帯を承認しました（{user}、{hours:g}時間）。", "ok")
    return redirect(url_for("vpn.index"))


@bp.route("/windows/<int:window_id>/cancel", methods=["POST"])
@requires("vpn.edit")
def cancel_window(window_id: int) -> Any:
    store = _windows()
    if store is None:
        abort(404)
    store.cancel(window_id)
    wctx.audit("vpn.window_cancelled", {"window": window_id})
    flash("保守作業の時間帯を取り消しました。", "ok")
    return redirect(url_for("vpn.index"))
