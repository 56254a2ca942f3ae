"""The web UI's actions (appliance.actions), run by the daemon for the web UI and the fleet API: apply a config
text, confirm the pending change, make the kernel follow the live revision, replace the web certificate.

The caller names the account it acts for; the daemon looks the account up (webui.action_accounts) and applies
with that account's own permission set as `authority` (appliance.config.authority), so the web UI cannot ask
for more than the signed-in person may change. The audit entries are ConfigService's own, with the account as
the actor. Trade-off, written down: the account is taken from the request, and the web UI writes its own
tables (sessions, accounts) in the state database, so a web UI taken over can still act as any account; what
it cannot do is anything outside the allow-list, or a change no account may make.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.actions.registry import MAX_REQUEST, ActionEnv, ActionError, action
from appliance.config.authority import WEB_MANAGE
from appliance.service import ConfigService
from webui.action_accounts import account_permissions, require

ACTION_NAMES = ("config.apply", "config.confirm", "config.reconcile", "web.install_certificate")
MAX_PEM = 64 * 1024
SOURCES = ("web", "fleet")  # who may ask through the socket: the web UI's pages and the fleet API
MAX_CONFIRM_SECONDS = 24 * 3600


def _source(source: str) -> str:
    if source not in SOURCES:
        raise ActionError(f"知らない送り元です: {source[:32]}", f"unknown source {source[:32]!r}")
    return source


def _service(env: ActionEnv) -> ConfigService:
    return ConfigService(env.ctx, subsystems=env.subsystems)


@dataclass(frozen=True)
class ApplyArgs:
    text: str = field(metadata={"max": MAX_REQUEST})
    actor: str
    source: str
    comment: str = ""
    confirm_seconds: int | None = None
    remote: str = ""


@action("config.apply", ApplyArgs)
def apply(env: ActionEnv, args: ApplyArgs) -> dict[str, Any]:
    """Validate and apply a config text for an account (its permissions as authority), as ConfigService does."""
    seconds = args.confirm_seconds or None
    if seconds is not None and not 0 < seconds <= MAX_CONFIRM_SECONDS:
        raise ActionError("確定までの時間が範囲外です", "confirm_seconds out of range")
    rev = _service(env).apply(args.text, args.actor, _source(args.source), args.comment[:200],
                              confirm_seconds=seconds, remote=args.remote[:64],
                              authority=account_permissions(env, args.actor))  # fmt: skip
    return {"revision": rev.id}


@dataclass(frozen=True)
class ConfirmArgs:
    actor: str
    source: str
    remote: str = ""
    revision: int | None = None  # only if this revision is the pending one
    only_own: bool = False  # only if `actor` started the pending change


@action("config.confirm", ConfirmArgs)
def confirm(env: ActionEnv, args: ConfirmArgs) -> dict[str, Any]:
    """Make the pending revision permanent (ConfigService.confirm checks both conditions under the lock)."""
    account_permissions(env, args.actor)
    rev = _service(env).confirm(args.actor, _source(args.source), remote=args.remote[:64],
                                revision=args.revision, started_by=args.actor if args.only_own else None)  # fmt: skip
    return {"revision": rev.id}


@dataclass(frozen=True)
class ReconcileArgs:
    actor: str


@action("config.reconcile", ReconcileArgs)
def reconcile(env: ActionEnv, args: ReconcileArgs) -> dict[str, Any]:
    """Make the kernel follow the live revision again (after a restore swapped the state). No account check:
    the restored database may not know the account that restored it, and this changes nothing but the kernel
    back to the live revision."""
    rev = _service(env).reconcile()
    return {"revision": rev.id if rev else None}


@dataclass(frozen=True)
class CertificateArgs:
    cert_pem: str = field(metadata={"max": MAX_PEM})
    key_pem: str = field(metadata={"max": MAX_PEM})
    actor: str


@action("web.install_certificate", CertificateArgs)
def install(env: ActionEnv, args: CertificateArgs) -> dict[str, Any]:
    """Check the key belongs to the certificate, then install both (webui.tls.install_certificate)."""
    from webui.tls import install_certificate

    require(env, args.actor, WEB_MANAGE)
    install_certificate(
        env.ctx.paths.keys_dir, args.cert_pem.encode("latin-1"), args.key_pem.encode("latin-1")
    )
    return {}
