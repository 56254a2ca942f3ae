"""設定 → 侵入検知（IDS）: which rule set watches the clinic (`ids.profile`, changed through the same review /
diff / apply-with-confirm page as every other change) and a rule update by upload (管理者 only).

Routes live on the settings blueprint so the navigation shows 設定 as the current page.
"""

from __future__ import annotations

from typing import Any

import yaml
from flask import abort, flash, redirect, render_template, request, url_for

from appliance.actions import spool
from appliance.actions.registry import ActionError
from appliance.errors import MamoriError
from webui import actions, changes, core, rules_upload
from webui import context as wctx
from webui.context import requires
from webui.views.settings_bp import bp
from webui.yamlpath import replace_scalar

# Refusals of an upload before it reached the IDS: told to the person and audited as upload_refused.
REFUSAL_CODES = (rules_upload.RulesUploadError.code, spool.SpoolError.code, ActionError.code)
PROFILES = {
    "clinic": ("医院向け（おすすめ）",
               "小さな医院で起こりやすい攻撃に絞ったルール（約7,000件）。Raspberry Pi などの小さな機械でも動きます。"),
    "full": ("すべてのルール",
             "公開ルール集（ET Open）のすべて（約25,000件）。メモリを多く使い（約2倍）、起動にも時間がかかります。"
             "2 GB 以下の機械には向きません。"),
}  # fmt: skip


@bp.route("/ids")
@requires("settings.view")
def ids() -> Any:
    cfg = core.live_config()
    return render_template(
        "settings/ids.html", cfg=cfg, profiles=PROFILES, last=_last_update(),
        installed=_installed(), max_mb=rules_upload.MAX_UPLOAD // (1024 * 1024),
    )  # fmt: skip


def _installed() -> bool:
    from ids.sources import current_source

    return current_source(wctx.ctx().paths) is not None


def _last_update() -> dict[str, Any] | None:
    """The last rule update that landed, from the audit log (where `ids.updates` records every update)."""
    for entry in wctx.audit_log().search(text="ids.rules.update", limit=20):
        if entry.action == "ids.rules.update":
            return {"ts": entry.ts, "actor": entry.actor, "source": entry.source,
                    "enabled": entry.detail.get("enabled"), "source_rules": entry.detail.get("source_rules")}  # fmt: skip
    return None


@bp.route("/ids/profile", methods=["POST"])
@requires("settings.edit")
def ids_profile() -> Any:
    profile = request.form.get("profile", "")
    if profile not in PROFILES:
        abort(400)
    text = core.live_text()
    cfg = core.live_config()
    if text is None or cfg is None:
        abort(409)
    if cfg.ids.profile == profile:
        flash(f"侵入検知のルールはすでに「{PROFILES[profile][0]}」です。変更はありません。", "info")
        return redirect(url_for("settings.ids"))
    new_text = replace_scalar(text, "ids.profile", profile)
    if new_text is None:  # no plain `profile:` line to change: rebuild the document (comments are lost)
        data = yaml.safe_load(text)
        data.setdefault("ids", {})["profile"] = profile
        new_text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    token = changes.propose(new_text, f"侵入検知のルールを「{PROFILES[profile][0]}」に変更", "settings.edit")
    return redirect(url_for("settings.review", token=token))


@bp.route("/ids/rules", methods=["POST"])
@requires("ids.rules_update")
def ids_rules() -> Any:
    """Upload → temp file under the state dir → ids.updates.update_rules → one plain sentence."""
    upload = request.files.get("archive")
    cfg = core.live_config()
    if cfg is None:
        abort(409)
    filename = (upload.filename or "")[:200] if upload is not None else ""
    try:
        if upload is None or not filename:
            raise rules_upload.RulesUploadError("ルールのファイルを選んでください。", "choose a rules file")
        rules_upload.check_name(filename)
        with spool.spool_upload(wctx.ctx(), "rules", upload.stream, rules_upload.MAX_UPLOAD) as name:
            # The daemon tests and installs it (ids.web_actions): the rules and Suricata are root's.
            outcome = rules_upload.Outcome(
                **actions.call("ids.rules_install", actor=wctx.user().name, upload=name)
            )
    except MamoriError as exc:
        if exc.code not in REFUSAL_CODES:
            raise
        wctx.audit("ids.rules.upload_refused", {"file": filename, "error": exc.text("en")})
        outcome = rules_upload.Outcome(
            False, f"ルールを更新できませんでした。{exc.text('ja')}{rules_upload.KEEP_LIVE}"
        )
    status = 200 if outcome.ok else 400
    return render_template(
        "settings/ids.html", cfg=cfg, profiles=PROFILES, last=_last_update(), installed=_installed(),
        max_mb=rules_upload.MAX_UPLOAD // (1024 * 1024), outcome=outcome, filename=filename,
    ), status  # fmt: skip
