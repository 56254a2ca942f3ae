"""The checklist in the web UI: a Flask blueprint for webui to register (`app.register_blueprint(reports.web.bp)`).

It uses the web UI's own gate (`webui.context.requires`) and CSRF check (the app's before_request), so
it adds no second login or permission model. Viewing is `audit.view` (inspection evidence, like the
audit log). The clinic's own answers need `accounts.manage`: a vendor can never be granted that, so a
vendor cannot answer the checklist for the clinic.
"""

from __future__ import annotations

import os
import re
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, url_for

from appliance.errors import MamoriError
from reports import api
from reports.answers import set_answer
from reports.checklist import summary
from reports.render import fmt_ts
from timesvc.status import ClockState
from webui import actions
from webui import context as wctx
from webui.context import requires

bp = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")
_REPORT_NAME = re.compile(r"^(\d{4}-\d{2})\.(html|pdf)$")


@bp.route("/")
@requires("audit.view")
def index() -> Any:
    items = api.checklist(wctx.ctx(), wctx.now(), _clock())
    return render_template("reports/web_checklist.html", items=items, counts=summary(items),
                           can_answer=wctx.can("accounts.manage"), monthly=_monthly_files())  # fmt: skip


@bp.route("/checklist.html")
@requires("audit.view")
def printable() -> Any:
    return Response(api.checklist_html(wctx.ctx(), wctx.now(), _clock()), mimetype="text/html")


@bp.route("/ledger.csv")
@requires("audit.view")
def ledger() -> Any:
    wctx.audit("reports.ledger_export")
    return Response(api.ledger_csv(wctx.ctx(), _clock()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=ledger.csv"})  # fmt: skip


@bp.route("/answer", methods=["POST"])
@requires("accounts.manage")
def answer() -> Any:
    account = wctx.user()
    assert account is not None  # requires() let us in
    form = request.form
    set_answer(wctx.ctx().db, form.get("item", "")[:16], form.get("answer", "")[:8],
               form.get("target_date", "")[:10], form.get("note", "")[:500], actor=account.name, source="web",
               remote=wctx.remote())  # fmt: skip
    flash("回答を記録しました。", "ok")
    return redirect(url_for("reports.index"))


def _clock() -> ClockState:
    """chronyd's state as the daemon reads it (timesvc.web_actions): its socket is root's and _chrony's."""
    return ClockState.from_dict(actions.call("time.status", actor=wctx.actor_name())["state"])


def _monthly_files() -> list[tuple[str, str, str]]:
    """(month, file name, time written) of every stored monthly report, newest first. The reports are root's:
    the daemon lists them (reports.web_actions)."""
    listed = actions.call("reports.monthly_list", actor=wctx.actor_name())["reports"]
    found = [(m.group(1), name, fmt_ts(mtime)) for name, mtime in listed if (m := _REPORT_NAME.match(name))]
    return sorted(found, reverse=True)


@bp.route("/monthly/<name>")
@requires("audit.view")
def monthly(name: str) -> Any:
    if not _REPORT_NAME.match(name):  # only YYYY-MM.html / .pdf: no path can be named through this
        abort(404)
    try:  # the daemon opens it and hands the descriptor over (reports.web_actions)
        _result, fd = actions.call_fd("reports.monthly_open", actor=wctx.actor_name(), name=name)
    except MamoriError as exc:
        if exc.code == "action.refused":
            abort(404)
        raise
    if fd is None:
        abort(404)
    mimetype = "application/pdf" if name.endswith(".pdf") else "text/html"
    return send_file(os.fdopen(fd, "rb"), as_attachment=name.endswith(".pdf"), download_name=name,
                     mimetype=mimetype)  # fmt: skip
