"""The backup area's actions for the web UI (appliance.actions): back up now, test a stored archive.

Run by the daemon: an archive holds every key of the box and is made from the stored passphrase, both
root's. An archive is named by its file name only, looked up in the listing of the configured backup
directory (never joined to a path). 管理者 only (`backup.manage`), as the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action
from appliance.backup import passphrase as passphrase_mod
from appliance.backup import store
from webui.action_accounts import require

ACTION_NAMES = ("backup.create", "backup.test")
PERMISSION = "backup.manage"
NO_PASSPHRASE = ActionError(
    "バックアップのパスフレーズがまだ設定されていません", "no backup passphrase is set"
)


def _dir_and_keep(env: ActionEnv) -> tuple[Path, int | None]:
    cfg = env.config()
    return store.resolve_dir(env.ctx.paths, cfg.backup.dir if cfg else None), cfg.backup.keep if cfg else None


@dataclass(frozen=True)
class CreateArgs:
    actor: str


@action("backup.create", CreateArgs)
def create(env: ActionEnv, args: CreateArgs) -> dict[str, Any]:
    """Make an encrypted archive now, in the configured directory (audited by the backup API)."""
    from appliance.backup import create_backup

    require(env, args.actor, PERMISSION)
    secret = passphrase_mod.load_passphrase(env.ctx.paths)
    if secret is None:
        raise NO_PASSPHRASE
    out_dir, keep = _dir_and_keep(env)
    path = Path(create_backup(env.ctx, secret, out_dir, keep=keep, actor=args.actor, source="web"))
    return {"archive": path.name}


@dataclass(frozen=True)
class TestArgs:
    actor: str
    archive: str


@action("backup.test", TestArgs)
def test(env: ActionEnv, args: TestArgs) -> dict[str, Any]:
    """Decrypt and check a listed archive in a temp directory (the live box untouched); the result's text."""
    from appliance.backup import test_backup

    require(env, args.actor, PERMISSION)
    out_dir, _ = _dir_and_keep(env)
    path = next((i.path for i in store.list_archives(out_dir) if i.path.name == args.archive), None)
    if path is None:
        raise ActionError("そのバックアップはありません", "no such archive in the backup directory")
    secret = passphrase_mod.load_passphrase(env.ctx.paths)
    if secret is None:
        raise NO_PASSPHRASE
    result = test_backup(env.ctx, path, secret, actor=args.actor, source="web")
    return {"ok": result.ok, "ja": result.text("ja")}
