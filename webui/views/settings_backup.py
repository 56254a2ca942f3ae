"""設定 → バックアップ (issue 7): the backup status, the stored archives to download, 「今すぐバックアップ」 and
a restore test per archive. 管理者 only (`backup.manage`): an archive holds every key of the box.

A download or test names an archive only by its file name, and that name is looked up in the listing of
the configured backup directory; anything else is 404. A path from the request never reaches the disk.
The backup API records its own audit entries (source "web"); the download, which the API does not see,
is audited here with the remote address.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import abort, flash, redirect, render_template, send_file, url_for

from appliance.backup import passphrase as passphrase_mod
from appliance.backup import records, store
from appliance.errors import MamoriError
from webui import actions, core
from webui import context as wctx
from webui.context import requires
from webui.views.settings_bp import bp

log = logging.getLogger(__name__)
SET_PASSPHRASE_HINT = (
    "バックアップのパスフレーズがまだ設定されていません。この機械で管理者が "
    "「mamori backup set-passphrase」を実行して設定してください（パスフレーズは紙に書いて金庫などに保管してください）。"
)


def _backup_dir() -> Path:
    cfg = core.live_config()
    return store.resolve_dir(wctx.ctx().paths, cfg.backup.dir if cfg else None)


def _archive(name: str) -> Path:
    """The listed archive called `name`, or 404: the name is matched, never joined to a path."""
    for info in store.list_archives(_backup_dir()):
        if info.path.name == name:
            return info.path
    abort(404)


@bp.route("/backup")
@requires("backup.manage")
def backup_page() -> Any:
    ctx = wctx.ctx()
    ctx.db.migrate()
    return render_template(
        "settings/backup.html",
        status=records.backup_status(ctx.db),
        has_passphrase=passphrase_mod.load_passphrase(ctx.paths) is not None,
        archives=store.list_archives(_backup_dir()),
        directory=str(_backup_dir()),
        hint=SET_PASSPHRASE_HINT,
    )


@bp.route("/backup/download/<name>")
@requires("backup.manage")
def backup_download(name: str) -> Any:
    path = _archive(name)
    wctx.audit("web.backup_download", {"archive": path.name})
    return send_file(path, as_attachment=True, download_name=path.name, mimetype="application/octet-stream")


@bp.route("/backup/now", methods=["POST"])
@requires("backup.manage")
def backup_now() -> Any:
    ctx = wctx.ctx()
    secret = passphrase_mod.load_passphrase(ctx.paths)
    if secret is None:
        flash(SET_PASSPHRASE_HINT, "warn")
        return redirect(url_for("settings.backup_page"))
    try:  # the daemon makes the archive (appliance.backup.web_actions): it holds every key of the box
        name = actions.call("backup.create", actor=wctx.actor_name("web"))["archive"]
    except MamoriError as exc:
        flash(f"バックアップに失敗しました: {exc.text('ja')}", "error")
        return redirect(url_for("settings.backup_page"))
    flash(f"バックアップを作成しました（{name}）。", "ok")
    return redirect(url_for("settings.backup_page"))


@bp.route("/backup/test/<name>", methods=["POST"])
@requires("backup.manage")
def backup_test(name: str) -> Any:
    path = _archive(name)
    ctx = wctx.ctx()
    secret = passphrase_mod.load_passphrase(ctx.paths)
    if secret is None:
        flash(SET_PASSPHRASE_HINT, "warn")
        return redirect(url_for("settings.backup_page"))
    result = actions.call("backup.test", actor=wctx.actor_name("web"), archive=path.name)
    flash(f"{path.name}: {result['ja']}", "ok" if result["ok"] else "error")
    return redirect(url_for("settings.backup_page"))
