"""The backup area's actions for the web UI (appliance.actions): the listing, back up now, test a stored
archive, open one for download, and the restore (check, run, then the daemon's reload).

Run by the daemon: an archive holds every key of the box and is made from the stored passphrase, both
root's; the web UI (as `mamori-web`) can read neither. An archive is named by its file name only, looked up
in the listing of the configured backup directory (never joined to a path). A download is the archive's open
descriptor handed to the web UI with the answer (registry.FD_KEY, SCM_RIGHTS over the socket): the web UI
streams it to the browser without being able to open anything else in the directory, and an archive of any
size passes without the 4 MB cap of a JSON answer. A restore's passphrase is either typed (it travels in the
request) or "the stored one", which only the daemon loads. 管理者 only (`backup.manage`), as the pages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.actions.registry import FD_KEY, ActionEnv, ActionError, action
from appliance.backup import passphrase as passphrase_mod
from appliance.backup import store
from appliance.fileio import open_regular
from webui.action_accounts import require

ACTION_NAMES = (
    "backup.status",
    "backup.create",
    "backup.test",
    "backup.open",
    "backup.restore_check",
    "backup.restore",
    "backup.restore_reload",
)
MAX_PORTS = 64
RELOAD_WITHIN = 600.0
# A restore this process ran, by state directory, until its reload was asked for (backup.restore_reload).
_RESTORED: dict[str, float] = {}
_RESTORED_LOCK = threading.Lock()
log = logging.getLogger(__name__)
PERMISSION = "backup.manage"
NO_PASSPHRASE = ActionError(
    "バックアップのパスフレーズがまだ設定されていません", "no backup passphrase is set"
)


def _dir_and_keep(env: ActionEnv) -> tuple[Path, int | None]:
    cfg = env.config()
    return store.resolve_dir(env.ctx.paths, cfg.backup.dir if cfg else None), cfg.backup.keep if cfg else None


def _listed(env: ActionEnv, name: str) -> Path:
    out_dir, _ = _dir_and_keep(env)
    path = next((i.path for i in store.list_archives(out_dir) if i.path.name == name), None)
    if path is None:
        raise ActionError("そのバックアップはありません", "no such archive in the backup directory")
    return path


def _stored_secret(env: ActionEnv) -> str:
    """The box's stored backup passphrase (never sent to the web UI)."""
    secret = passphrase_mod.load_passphrase(env.ctx.paths)
    if secret is None:
        raise NO_PASSPHRASE
    return secret


def _secret(env: ActionEnv, typed: str, use_stored: bool) -> str:
    if use_stored:
        return _stored_secret(env)
    if not typed:
        raise ActionError("パスフレーズがありません", "no passphrase given")
    return typed


def _port_map(pairs: tuple[str, ...]) -> dict[str, str]:
    """`("wan0=enp1s0", ...)` -> {"wan0": "enp1s0"} (the registry has no dict type; a port name has no "=")."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or "=" in new:
            raise ActionError("ポートの割り当ての形が違います", f"port mapping {pair[:64]!r} is not old=new")
        out[old] = new
    return out


@dataclass(frozen=True)
class StatusArgs:
    actor: str


@action("backup.status", StatusArgs)
def status(env: ActionEnv, args: StatusArgs) -> dict[str, Any]:
    """The backup page's root-only facts: whether a passphrase is stored, the directory and its archives."""
    require(env, args.actor, PERMISSION)
    out_dir, _ = _dir_and_keep(env)
    archives = [{"name": i.path.name, "size": i.size, "mtime": i.mtime, "problem": i.problem}
                for i in store.list_archives(out_dir)]  # fmt: skip
    has = passphrase_mod.load_passphrase(env.ctx.paths) is not None
    return {"has_passphrase": has, "directory": str(out_dir), "archives": archives}


@dataclass(frozen=True)
class CreateArgs:
    actor: str


@action("backup.create", CreateArgs)
def create(env: ActionEnv, args: CreateArgs) -> dict[str, Any]:
    """Make an encrypted archive now, in the configured directory (audited by the backup API)."""
    from appliance.backup import create_backup

    require(env, args.actor, PERMISSION)
    secret = _stored_secret(env)
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
    path = _listed(env, args.archive)
    secret = _stored_secret(env)
    result = test_backup(env.ctx, path, secret, actor=args.actor, source="web")
    return {"ok": result.ok, "ja": result.text("ja")}


@dataclass(frozen=True)
class OpenArgs:
    actor: str
    archive: str


@action("backup.open", OpenArgs)
def open_archive(env: ActionEnv, args: OpenArgs) -> dict[str, Any]:
    """A listed archive opened for reading, handed over as a descriptor (the web UI's download streams it)."""
    require(env, args.actor, PERMISSION)
    path = _listed(env, args.archive)
    fd = open_regular(path)
    return {"archive": path.name, "size": os.fstat(fd).st_size, FD_KEY: fd}


@dataclass(frozen=True)
class RestoreArgs:
    actor: str
    archive: str
    passphrase: str = field(default="", metadata={"max": 1024})
    use_stored: bool = False
    ports: list[str] = field(default_factory=list, metadata={"max": MAX_PORTS})


@action("backup.restore_check", RestoreArgs)
def restore_check(env: ActionEnv, args: RestoreArgs) -> dict[str, Any]:
    """What restoring a listed archive would do to the ports, nothing changed (api.inspect_restore). When the
    ports differ and no mapping is given: {"mismatch": the backup's ports, "text": its config} for the form."""
    from appliance.backup import api
    from appliance.backup import ports as ports_mod

    require(env, args.actor, PERMISSION)
    ports = _port_map(args.ports) or None
    path = _listed(env, args.archive)
    secret = _secret(env, args.passphrase, args.use_stored)
    try:
        plan = api.inspect_restore(env.ctx, path, secret, ports=ports)
    except ports_mod.PortMismatchError as exc:
        if ports is not None:
            raise
        text = api.inspect_restore(env.ctx, path, secret, box_ports=exc.wanted).text
        return {"mismatch": list(exc.wanted), "text": text}
    return {"plan": {"wanted": list(plan.wanted), "present": list(plan.present),
                     "renames": [[a, b] for a, b in plan.renames.items()], "text": plan.text,
                     "original": plan.original}}  # fmt: skip


@action("backup.restore", RestoreArgs)
def restore(env: ActionEnv, args: RestoreArgs) -> dict[str, Any]:
    """Replace the box's config and state with a listed archive's (api.restore_backup, which audits it)."""
    from appliance.backup import api

    require(env, args.actor, PERMISSION)
    ports = _port_map(args.ports) or None
    path = _listed(env, args.archive)
    secret = _secret(env, args.passphrase, args.use_stored)
    manifest = api.restore_backup(env.ctx, path, secret, actor=args.actor, source="web", ports=ports)
    with _RESTORED_LOCK:
        _RESTORED[str(env.ctx.paths.state_dir)] = time.monotonic()
    return {"created_ts": manifest.created_ts}


@dataclass(frozen=True)
class ReloadArgs:
    actor: str


@action("backup.restore_reload", ReloadArgs)
def restore_reload(env: ActionEnv, args: ReloadArgs) -> dict[str, Any]:
    """After a restore: SIGHUP to the running daemon (re-apply, restart the workers and the web UI). Only once,
    within RELOAD_WITHIN seconds of a restore this daemon ran; no account check, as config.reconcile: the
    restored database may not know the account that restored it."""
    from appliance.backup import api

    with _RESTORED_LOCK:
        at = _RESTORED.pop(str(env.ctx.paths.state_dir), None)
    if at is None or time.monotonic() - at > RELOAD_WITHIN:
        raise ActionError("直前に復元していないため、再読み込みはしません", "no restore to reload after")
    log.info("backup: reload after the restore by %s", args.actor[:64])
    return {"reloaded": api.reload_running_daemon(env.ctx.paths)}
