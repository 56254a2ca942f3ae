"""Software updates as actions for the web UI (appliance.actions): the status, install now or in the quiet
hours, withdraw the request, ask for a check, take an uploaded bundle.

Run by the daemon: the update directory (staged bundles, request.json, the installer's progress and result)
is root's, and request.json is what the root installer acts on. The reboot time of a quiet-hours install is
computed here from the config and the clock, not taken from the request. An uploaded bundle is named by its
spool file name (appliance.actions.spool: no link followed, a regular file of one link within the size limit) and read
only through that descriptor by update.actions.take_file, which copies it into incoming/ and verifies it.
Audit entries are update.actions' own (refusals too), with the account as the actor. Viewing needs
dashboard.view, changing update.install, as the pages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, ActionError, action
from update import actions
from update.box import UpdatePaths, box_info
from update.stage import DEFAULT_LIMIT
from webui.action_accounts import require

ACTION_NAMES = ("update.status", "update.install", "update.cancel", "update.check", "update.upload")
VIEW = "dashboard.view"
INSTALL = "update.install"


def upload_limit(env: ActionEnv) -> int:
    cfg = env.config()
    return min(DEFAULT_LIMIT, (cfg.update.max_bundle_mb if cfg else 1024) * 1048576)


@dataclass(frozen=True)
class StatusArgs:
    actor: str


@action("update.status", StatusArgs)
def status(env: ActionEnv, args: StatusArgs) -> dict[str, Any]:
    """update.status.update_status, as a dict (the page and its progress bar)."""
    from update.status import update_status

    require(env, args.actor, VIEW)
    return {"status": asdict(update_status(env.ctx, env.config()))}


@dataclass(frozen=True)
class InstallArgs:
    actor: str
    when: str  # "now" or "quiet"
    remote: str = ""


@action("update.install", InstallArgs)
def install(env: ActionEnv, args: InstallArgs) -> dict[str, Any]:
    """Write the install request for the root side (update.actions.request): reboot now or at the next quiet
    hours' start; {"request": ..., "quiet_start": "HH:MM" or ""}."""
    from appliance.clock import wall
    from update.schedule import next_quiet_start, utc_iso

    require(env, args.actor, INSTALL)
    cfg = env.config()
    if args.when == "now":
        reboot, quiet = "now", ""
    elif args.when == "quiet":
        spec = cfg.update.quiet_hours if cfg else "02:00-04:00"
        reboot = "at:" + utc_iso(next_quiet_start(spec, wall(), cfg.clinic.timezone if cfg else None))
        quiet = spec.split("-")[0]
    else:
        raise ActionError("更新の時期の指定が違います", f"when must be now or quiet, not {args.when[:16]!r}")
    req = actions.request(env.ctx, cfg, reboot, args.actor, "web", args.remote[:64])
    return {"request": req, "quiet_start": quiet}


@dataclass(frozen=True)
class CancelArgs:
    actor: str
    remote: str = ""


@action("update.cancel", CancelArgs)
def cancel(env: ActionEnv, args: CancelArgs) -> dict[str, Any]:
    """Withdraw a waiting install request (update.actions.cancel)."""
    require(env, args.actor, INSTALL)
    return {"request": actions.cancel(env.ctx, args.actor, "web", args.remote[:64])}


@action("update.check", StatusArgs)
def check(env: ActionEnv, args: StatusArgs) -> dict[str, Any]:
    """Ask the update worker for a check now (update.worker.ask_for_check)."""
    from update.worker import ask_for_check

    require(env, args.actor, INSTALL)
    ask_for_check(env.ctx, args.actor)
    return {}


@dataclass(frozen=True)
class UploadArgs:
    actor: str
    upload: str
    remote: str = ""


@action("update.upload", UploadArgs)
def upload(env: ActionEnv, args: UploadArgs) -> dict[str, Any]:
    """Verify and stage a spooled bundle (update.actions.take_file, from the opened descriptor only); says
    whether its version already failed its trial boot here (then the page offers no install)."""
    from appliance.actions import spool

    require(env, args.actor, INSTALL)
    limit = upload_limit(env)
    with spool.open_spooled(env.ctx, "update", args.upload, limit) as src:
        staged = actions.take_file(env.ctx, src, args.actor, "web", args.remote[:64], limit=limit)
    rolled_back = box_info(UpdatePaths.of(env.ctx.paths)).rolled_back(staged.version)
    return {"version": staged.version, "name": staged.name, "rolled_back": rolled_back}
