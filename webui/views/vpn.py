"""VPN: users (from the config), their devices, a new device's QR shown exactly once, sessions online,
and the vendor maintenance windows the clinic approves. Devices and windows are the VPN area's state
(vpn.store, vpn.windows); adding a user is a config change and goes through the review page."""

from __future__ import annotations

import logging
from typing import Any

import yaml
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.errors import MamoriError, NotFoundError
from webui import actions, changes, core, sources
from webui import context as wctx
from webui.context import requires
from webui.qr import svg

log = logging.getLogger(__name__)
bp = Blueprint("vpn", __name__, url_prefix="/vpn")
VPN_ROLE_LABELS = {"doctor": "医師", "staff": "職員", "vendor": "保守業者"}


# A vendor account may hold vpn.edit (the clinic granted the VPN area), but it must never widen its own
# access: approving a maintenance window (the clinic's check on the vendor) and issuing or re-issuing
# another person's device (which revokes that person's key) are for the clinic's administrator. A web
# account and a VPN user are the same person when they have the same name.
ADMIN_ONLY_WINDOW_JA = "保守作業の時間帯の承認は、医院の管理者だけができます。管理者に承認を頼んでください。"
SELF_WINDOW_JA = "自分の作業の時間帯を自分で承認することはできません。医院の管理者に承認を頼んでください。"
OTHERS_DEVICE_JA = "ほかの方の機器の追加や再発行は、医院の管理者だけができます。管理者に頼んでください。"


def _refused(action: str, detail: dict[str, Any], message: str) -> Any:
    """Refuse before anything changed: audited, told in Japanese, back to the VPN page."""
    wctx.audit(action, detail)
    flash(message, "error")
    return redirect(url_for("vpn.index"))


def _is_admin() -> bool:
    account = wctx.user()
    return account is not None and account.role == "admin"


def _windows() -> Any:
    try:
        from vpn.windows import WindowStore
    except ImportError:
        return None
    return WindowStore(wctx.ctx().db, clock=wctx.now)


def _reach(cfg: Any) -> list[tuple[str, str]] | None:
    """Lines of 「ご自宅からの接続」: (message, when checked), plain Japanese; None when the VPN is off."""
    if cfg is None or not cfg.vpn.enabled:
        return None
    from appliance.clock import show
    from vpn import queries as vpn_queries

    st = vpn_queries.reach(wctx.ctx(), cfg)
    tz = cfg.clinic.timezone
    msgs = st.messages("ja")
    out = [
        (m, show(r.at, tz, "%Y/%m/%d %H:%M", ""))
        for m, r in zip(msgs, (st.ipv4, st.ipv6, st.link), strict=False)
    ]
    return [*out, (msgs[-1], "")]


def _ddns(cfg: Any) -> list[tuple[str, bool]]:
    """The box's IPv6 name under 「ご自宅からの接続」: what it points at, or why it cannot be updated."""
    if cfg is None or not cfg.vpn.enabled:
        return []
    from vpn import queries as vpn_queries

    return vpn_queries.ddns_lines(wctx.ctx(), cfg)


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
        clinic_admin=_is_admin(), me=wctx.user().name, reach=_reach(cfg), ddns=_ddns(cfg),
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
    if not _is_admin() and user != wctx.user().name:
        return _refused("vpn.device_refused", {"user": user, "device": device}, OTHERS_DEVICE_JA)
    try:  # the daemon makes the key pair and adds the peer (vpn.web_actions)
        issued = actions.call("vpn.provision", user=user, device=device, actor=wctx.user().name)
    except MamoriError as exc:
        flash(exc.text("ja"), "error")
        return redirect(url_for("vpn.index"))
    wctx.audit("vpn.device_added", {"user": user, "device": device, "ip": issued["ip4"]})
    return render_template(
        "vpn/issued.html", user=user, device=device, conf=issued["conf"], qr=svg(issued["conf"], 4)
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
    if not _is_admin():
        return _refused("vpn.window_refused", {"user": user, "why": "not_admin"}, ADMIN_ONLY_WINDOW_JA)
    if user == wctx.user().name:
        return _refused("vpn.window_refused", {"user": user, "why": "self"}, SELF_WINDOW_JA)
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


PEER_LOG_PAGE = 50
PEER_LOG_MAX_PAGES = 20  # 1000 records at most: older ones are in the monthly report and the CLI
PEER_LOG_KINDS = {
    "connect": "接続",
    "disconnect": "切断",
    "endpoint": "接続元が変わった",
    "bytes": "通信量",
    "two_endpoints": "2か所から同時に接続",
    "large_transfer": "大量の通信",
}


@bp.route("/windows/<int:window_id>/report")
@requires("vpn.view")
def window_report(window_id: int) -> Any:
    """The work report of one maintenance window (MHLW 6.0: remote work is checked against its approval):
    what the vendor's tunnel reached and was refused, from the box's own connection log.
    Hosts, ports and endpoints come from the network: the template shows them through autoescape only."""
    cfg = core.live_config()
    if cfg is None:
        abort(404)
    try:
        from vpn.report import bytes_text, port_text
        from vpn.report import window_report as build
        from vpn.sessions import END_REASON_JA
    except ImportError:
        abort(404)
    try:
        rep = build(wctx.ctx(), cfg, window_id)
    except NotFoundError:
        abort(404)
    return render_template(
        "vpn/window_report.html", rep=rep, end_reasons=END_REASON_JA, kind_labels=PEER_LOG_KINDS,
        bytes_text=bytes_text, port_text=port_text,
    )  # fmt: skip


@bp.route("/users/<user>/log")
@requires("vpn.view")
def peer_log_page(user: str) -> Any:
    """A VPN user's tunnel log, newest first, PEER_LOG_PAGE per page and at most PEER_LOG_MAX_PAGES."""
    cfg = core.live_config()
    if cfg is None or user not in {u.name for u in cfg.vpn.users}:
        abort(404)
    try:
        from vpn.monitor import peer_log
    except ImportError:
        abort(404)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), PEER_LOG_MAX_PAGES)
    start = (page - 1) * PEER_LOG_PAGE
    rows = peer_log(wctx.ctx(), user, limit=start + PEER_LOG_PAGE + 1)
    entries = rows[start : start + PEER_LOG_PAGE]
    more = len(rows) > start + PEER_LOG_PAGE and page < PEER_LOG_MAX_PAGES
    vuser = next(u for u in cfg.vpn.users if u.name == user)
    return render_template(
        "vpn/peer_log.html", vuser=vuser, entries=entries, page=page, more=more, kind_labels=PEER_LOG_KINDS,
        capped=page == PEER_LOG_MAX_PAGES and len(rows) > start + PEER_LOG_PAGE,
    )  # fmt: skip
