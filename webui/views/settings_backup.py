"""設定 → バックアップ (issue 7): the backup status, the stored archives to download, 「今すぐバックアップ」 and
a restore test per archive. 管理者 only (`backup.manage`): an archive holds every key of the box.

The archives and the stored passphrase are root's: the listing comes from the daemon (`backup.status`), and a
download is the archive's descriptor the daemon hands over (`backup.open`, appliance.backup.web_actions),
streamed to the browser. A download or test names an archive only by its file name, and that name is looked
up in the listing of the configured backup directory; anything else is 404. A path from the request never
reaches the disk. The backup API records its own audit entries (source "web"); the download, which the API
does not see, is audited here with the remote address.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, render_template, send_file, url_for

from appliance.backup import records
from appliance.errors import MamoriError
from webui import actions
from webui import context as wctx
from webui.context import requires
from webui.views.settings_bp import bp

log = logging.getLogger(__name__)
SET_PASSPHRASE_HINT = (
    "バックアップのパスフレーズがまだ設定されていません。この機械で管理者が "
    "「mamori backup set-passphrase」を実行して設定してください（パスフレーズは紙に書いて金庫などに保管してください）。"
)


@dataclass(frozen=True)
class Listed:
    """One archive of the daemon's listing (appliance.store.ArchiveInfo without the path and header)."""

    name: str
    size: int
    mtime: float
    problem: str = ""


def _status() -> dict[str, Any]:
    result = actions.call("backup.status", actor=wctx.actor_name("web"))
    result["archives"] = [Listed(**a) for a in result["archives"]]
    return result


def _archive(name: str) -> str:
    """The listed archive called `name`, or 404: the name is matched, never joined to a path."""
    for info in _status()["archives"]:
        if info.name == name:
            return info.name
    abort(404)


def has_passphrase() -> bool:
    return bool(_status()["has_passphrase"])


@bp.route("/backup")
@requires("backup.manage")
def backup_page() -> Any:
    ctx = wctx.ctx()
    ctx.db.migrate()
    listing = _status()
    return render_template(
        "settings/backup.html",
        status=records.backup_status(ctx.db),
        has_passphrase=listing["has_passphrase"],
        archives=listing["archives"],
        directory=listing["directory"],
        hint=SET_PASSPHRASE_HINT,
    )


@bp.route("/backup/download/<name>")
@requires("backup.manage")
def backup_download(name: str) -> Any:
    try:
        result, fd = actions.call_fd("backup.open", actor=wctx.actor_name("web"), archive=name)
    except MamoriError as exc:
        if exc.code == "action.refused":  # not in the listing
            abort(404)
        raise
    if fd is None:
        raise MamoriError("本体からファイルを受け取れませんでした。", "the daemon handed over no file",
                          code="action.no_file")  # fmt: skip
    wctx.audit("web.backup_download", {"archive": result["archive"]})
    return send_file(os.fdopen(fd, "rb"), as_attachment=True, download_name=result["archive"],
                     mimetype="application/octet-stream")  # fmt: skip


@bp.route("/backup/now", methods=["POST"])
@requires("backup.manage")
def backup_now() -> Any:
    if not has_passphrase():
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
    name = _archive(name)
    if not has_passphrase():
        flash(SET_PASSPHRASE_HINT, "warn")
        return redirect(url_for("settings.backup_page"))
    result = actions.call("backup.test", actor=wctx.actor_name("web"), archive=name)
    flash(f"{name}: {result['ja']}", "ok" if result["ok"] else "error")
    return redirect(url_for("settings.backup_page"))
