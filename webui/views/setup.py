"""First-boot setup wizard. No default password exists: the first administrator is made here, by someone
who can read the box's one-time setup code (webui/setup_code.py) from its screen.

Steps: 1 setup code and administrator -> 2 TOTP -> 3 clinic name -> 4 ports and zones -> 5 the line (which UDP
port doctors' VPN can come in on: MAP-E's usable ports) -> 6 notice address -> 7 summary and apply. Steps 1-2 run while no administrator exists (every other page redirects here); the first
administrator to finish TOTP wins and any other half-made administrator is removed, so a second browser
racing the wizard cannot keep an account. Steps 3-6 need that administrator signed in. The config is
applied through ConfigService, the same path as the CLI.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from appliance.errors import ConfigError, MamoriError
from appliance.zones import ZONE_LABELS
from webui import actions, core
from webui import context as wctx
from webui.interfaces import detect_ports
from webui.qr import svg, totp_uri
from webui.views.auth import finish_login
from webui.wizard import LINE_CHOICES, LINE_LABELS, ZONE_CHOICES, build_config_text, check_line

bp = Blueprint("setup", __name__, url_prefix="/setup")
DONE_KEY = "webui.setup_done"


def setup_done() -> bool:
    return wctx.ctx().db.get_kv(DONE_KEY) == "1"


def _wizard() -> dict[str, Any]:
    return dict(session.get("wizard") or {})


def _save(**values: Any) -> None:
    data = _wizard()
    data.update(values)
    session["wizard"] = data


def _admin_only() -> None:
    """Steps after the first two: the administrator made in step 1, signed in."""
    user = wctx.user()
    if user is None or user.role != "admin":
        abort(403)


@bp.route("/", methods=["GET", "POST"])
def start() -> Any:
    store = wctx.accounts()
    if store.admin_exists():
        return redirect(url_for("setup.clinic") if wctx.user() else url_for("auth.login"))
    actions.call("web.setup_code_check")  # the daemon makes the code the box shows (webui.setup_actions)
    if request.method == "GET":
        return render_template("setup/admin.html", form={})
    name = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    form = {"username": name, "display_name": request.form.get("display_name", "").strip()[:64],
            "setup_code": request.form.get("setup_code", "").strip()[:32]}  # fmt: skip
    code = SimpleNamespace(**actions.call("web.setup_code_check", entered=form["setup_code"]))
    if not code.ok:
        wctx.audit("web.setup_code_failed", {"locked": code.locked}, actor=name or "anonymous")
        error = (
            "セットアップコードを何度も間違えたため、しばらく受け付けません。15分ほど待ってからお試しください。"
            if code.locked
            else "セットアップコードが違います。Mamori 本体の画面に表示されている8文字を入力してください。"
        )
        return render_template("setup/admin.html", form=form, error=error), 429 if code.locked else 400
    if password != request.form.get("confirm", ""):
        return render_template(
            "setup/admin.html", form=form, error="パスワードが2回とも同じになっていません。"
        ), 400
    try:
        store.create(name, password, "admin", display_name=form["display_name"])
    except MamoriError as exc:
        return render_template("setup/admin.html", form=form, error=exc.text("ja")), 400
    token, _ = store.begin_enrolment(name)  # the seed waits on the server; the cookie holds only the token
    session.clear()
    session["setup_admin"] = {"name": name, "token": token}
    wctx.audit("web.setup_admin_created", {"user": name}, actor=name)
    return redirect(url_for("setup.totp"))


@bp.route("/totp", methods=["GET", "POST"])
def totp() -> Any:
    pending = session.get("setup_admin") or {}
    store = wctx.accounts()
    enrolment = store.pending_enrolment(str(pending.get("token", "")))
    if store.admin_exists() or enrolment is None or store.get(enrolment[0]) is None:
        session.pop("setup_admin", None)
        return redirect(url_for("setup.start"))
    name, secret = enrolment
    qr = svg(totp_uri(secret, name))
    if request.method == "GET":
        return render_template("setup/totp.html", qr=qr, secret=secret)
    # complete_enrolment uses up the step of the code that proved the seed: it cannot sign in once more.
    if store.complete_enrolment(pending["token"], request.form.get("code", "").strip()) is None:
        wctx.audit("web.login_failed", {"factor": "totp_enroll"}, actor=name)
        return render_template(
            "setup/totp.html",
            qr=qr,
            secret=secret,
            error="確認コードが違います。アプリに今表示されている6桁を入力してください。",
        ), 400
    for other in store.all():
        if other.role == "admin" and not other.totp_enabled:
            store.delete(other.name)
            wctx.audit("web.setup_admin_discarded", {"user": other.name}, actor=name)
    wctx.audit("web.totp_enrolled", {}, actor=name)
    actions.call("web.setup_code_discard")  # an administrator exists: the code has done its job
    finish_login(store.require(name))
    return redirect(url_for("setup.clinic"))


@bp.route("/clinic", methods=["GET", "POST"])
def clinic() -> Any:
    _admin_only()
    cfg = core.live_config()
    if request.method == "GET":
        name = _wizard().get("clinic_name") or (cfg.clinic.name if cfg else "")
        return render_template("setup/clinic.html", clinic_name=name)
    name = request.form.get("clinic_name", "").strip()
    if not (1 <= len(name) <= 64):
        return render_template(
            "setup/clinic.html", clinic_name=name, error="医院名を1〜64文字で入力してください。"
        ), 400
    _save(clinic_name=name)
    return redirect(url_for("setup.ports"))


@bp.route("/ports", methods=["GET", "POST"])
def ports() -> Any:
    _admin_only()
    detected = detect_ports()
    cfg = core.live_config()
    current = {i.name: i for i in cfg.interfaces} if cfg else {}
    if request.method == "GET":
        rows = _wizard().get("interfaces") or [
            {"name": p.name, "zone": current[p.name].zone if p.name in current else "",
             "address": (current[p.name].address or "") if p.name in current else "",
             "gateway": (current[p.name].gateway or "") if p.name in current else ""}
            for p in detected
        ]  # fmt: skip
        return render_template("setup/ports.html", ports=detected, rows=rows, zones=ZONE_CHOICES)
    names = {p.name for p in detected} | set(current)
    rows = []
    for name in sorted(names):
        zone = request.form.get(f"zone_{name}", "")
        if zone and zone in dict(ZONE_CHOICES):
            rows.append({"name": name, "zone": zone, "address": request.form.get(f"address_{name}", "").strip(),
                         "gateway": request.form.get(f"gateway_{name}", "").strip()})  # fmt: skip
    error = _ports_problem(rows)
    if error:
        return render_template(
            "setup/ports.html", ports=detected, rows=rows, zones=ZONE_CHOICES, error=error
        ), 400
    _save(interfaces=rows)
    return redirect(url_for("setup.line"))


def _ports_problem(rows: list[dict[str, str]]) -> str | None:
    if sum(1 for r in rows if r["zone"] == "wan") != 1:
        return f"「{ZONE_LABELS['wan']}」にする差し込み口を1つだけ選んでください。"
    if not any(r["zone"] == "lan" for r in rows):
        return f"「{ZONE_LABELS['lan']}」にする差し込み口を1つ以上選んでください。"
    return None


def _reach_warning(cfg: Any) -> str | None:
    """What the last reachability check said about the port now set, when it did not get in (vpn/reach.py)."""
    if cfg is None or not cfg.vpn.enabled:
        return None
    from vpn import queries as vpn_queries

    st = vpn_queries.reach(wctx.ctx(), cfg)
    if st.ipv4.state != "ng":
        return None
    return (f"前回の確認では、外から UDP {cfg.vpn.listen_port}番に届きませんでした。ルーターの転送の設定か、"
            "MAP-E で使えるポート番号かを確かめてください。")  # fmt: skip


@bp.route("/line", methods=["GET", "POST"])
def line() -> Any:
    """Which UDP port the VPN listens on: a router that forwards (any port), MAP-E (one of its usable ports)."""
    _admin_only()
    cfg = core.live_config()
    current = cfg.vpn.listen_port if cfg else 51820
    warning = _reach_warning(cfg)
    if request.method == "GET":
        form = {"line": "unknown", "port": "", **_wizard()}
        return render_template(
            "setup/line.html", form=form, lines=LINE_CHOICES, current=current, warning=warning
        )
    form = {k: request.form.get(k, "")[:4000] for k in ("line", "ranges", "port")}
    try:
        answer = check_line(form["line"], form["ranges"], form["port"], current)
    except ValueError as exc:
        return render_template("setup/line.html", form=form, lines=LINE_CHOICES, current=current,
                               warning=warning, error=str(exc)), 400  # fmt: skip
    _save(**answer)
    return redirect(url_for("setup.notify"))


@bp.route("/notify", methods=["GET", "POST"])
def notify() -> Any:
    _admin_only()
    if request.method == "GET":
        return render_template("setup/notify.html", form=_wizard())
    form = {k: request.form.get(k, "").strip() for k in ("notify_email", "smtp_host", "smtp_sender")}
    if form["notify_email"] and "@" not in form["notify_email"]:
        return render_template(
            "setup/notify.html",
            form=form,
            error="メールアドレスの形式ではありません（例: info@example.jp）。",
        ), 400
    if form["notify_email"] and not form["smtp_host"]:
        return render_template(
            "setup/notify.html",
            form=form,
            error="メールを送るには送信サーバーが必要です。保守業者から案内された値を入力してください。",
        ), 400
    _save(**form)
    return redirect(url_for("setup.summary"))


@bp.route("/summary", methods=["GET", "POST"])
def summary() -> Any:
    _admin_only()
    answers = _wizard()
    if "clinic_name" not in answers:
        return redirect(url_for("setup.clinic"))
    text = build_config_text(core.live_text(), answers)
    svc = core.service()
    try:
        diff = svc.diff(text)
    except ConfigError as exc:
        return render_template(
            "setup/summary.html",
            answers=answers,
            zone_labels=ZONE_LABELS,
            line_labels=LINE_LABELS,
            issues=exc.issues,
        ), 400
    if request.method == "GET":
        return render_template(
            "setup/summary.html", answers=answers, zone_labels=ZONE_LABELS, line_labels=LINE_LABELS, diff=diff
        )
    rev = actions.apply_config(
        wctx.ctx(),
        text,
        wctx.user().name,
        "web",
        comment="初期設定（セットアップ画面）",
        remote=wctx.remote(),
    )
    wctx.ctx().db.set_kv(DONE_KEY, "1")
    wctx.audit("web.setup_done", {"revision": rev.id})
    session.pop("wizard", None)
    flash("初期設定が終わりました。Mamori がクリニックのネットワークを見守っています。", "ok")
    return redirect(url_for("dashboard.index"))
