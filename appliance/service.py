"""ConfigService: the one path by which a config change lands, shared by the CLI, the web UI and the daemon.

validate -> apply to every engine all-or-nothing (appliance.apply) -> record the revision, write the
config file (atomically) and the audit entry in one database transaction. With `authority` (the actor's
permission set: a web UI account, a vendor over the fleet link) every changed path is first checked
against it (appliance.config.authority); a refusal is audited (`config.refused`) and nothing is applied.
Without it the caller is root (the CLI, the daemon, the timer) and may change everything.
With `confirm_seconds`, the revision stays `pending`; unless `confirm()` comes in time,
`revert_if_unconfirmed()` (run by a detached timer process and by the daemon) puts the previous
revision back by itself.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Collection, Sequence

from appliance.apply import apply_all, apply_lock
from appliance.audit import audit_log
from appliance.clock import wall
from appliance.config import authority as auth
from appliance.config.load import LoadedConfig, parse_config
from appliance.config.model import MamoriConfig
from appliance.disk import DiskFullError, disk_state
from appliance.errors import ConfigError, MamoriError, NotFoundError
from appliance.fileio import atomic_write
from appliance.revisions import Revision, RevisionStore, readable_diff
from appliance.subsystem import Context, Subsystem
from appliance.subsystems import build_subsystems

log = logging.getLogger(__name__)
PENDING_KEY = "confirm.pending"


class ConfirmRefused(MamoriError):
    """A confirmation that names a revision which is not the pending one, or comes from an account that did
    not start the pending change. `revision` and `status` say which and what it is now."""

    code = "config.not_pending"

    def __init__(self, ja: str, en: str, code: str, revision: int, status: str) -> None:
        super().__init__(ja, en, code=code)
        self.revision, self.status = revision, status

    @classmethod
    def not_pending(cls, revision: int, status: str) -> ConfirmRefused:
        return cls(f"リビジョン {revision} は確定待ちではありません（状態: {status}）",
                   f"revision {revision} is not waiting for confirmation (status: {status})",
                   "config.not_pending", revision, status)  # fmt: skip

    @classmethod
    def not_yours(cls, revision: int, author: str) -> ConfirmRefused:
        return cls(f"確定待ちのリビジョン {revision} は {author} さんの変更です。変更を始めたアカウントだけが確定できます",
                   f"pending revision {revision} was applied by {author}; only the account that started "
                   "a change may confirm it", "config.not_yours", revision, "pending")  # fmt: skip


class ConfigService:
    def __init__(self, ctx: Context, subsystems: Sequence[Subsystem] | None = None) -> None:
        self.ctx = ctx
        ctx.paths.ensure()
        ctx.db.migrate()
        self.revisions = RevisionStore(ctx.db)
        self.audit = audit_log(ctx)
        self._subsystems = subsystems

    @property
    def subsystems(self) -> Sequence[Subsystem]:
        if self._subsystems is None:
            self._subsystems = build_subsystems(self.ctx)
        return self._subsystems

    def current(self) -> Revision | None:
        return self.revisions.live()

    def validate(self, text: str) -> LoadedConfig:
        return parse_config(text)

    def diff(self, text: str) -> str:
        parse_config(text)
        live = self.current()
        return readable_diff(live.config_text if live else None, text)

    def history(self, limit: int = 50) -> list[Revision]:
        return self.revisions.history(limit)

    def baseline(self) -> MamoriConfig | None:
        """What a change is measured against: the live revision, else the config file the daemon applies at
        boot when nothing was applied through Mamori yet; None if neither (then every section is new)."""
        live = self.current()
        if live is not None:
            return parse_config(live.config_text).model
        try:
            return parse_config(self.ctx.paths.config.read_text(encoding="utf-8")).model
        except (FileNotFoundError, ConfigError):
            return None

    def refusal(self, model: MamoriConfig, authority: Collection[str]) -> auth.ConfigRefused | None:
        """The refusal `apply(..., authority=...)` would raise for this config now, or None. Applies nothing."""
        lacking = auth.missing(self.baseline(), model, authority)
        return auth.ConfigRefused(lacking) if lacking else None

    def apply(
        self,
        text: str,
        author: str,
        source: str,
        comment: str = "",
        confirm_seconds: int | None = None,
        remote: str = "",
        authority: Collection[str] | None = None,
    ) -> Revision:
        loaded = parse_config(text)
        with apply_lock(self.ctx.paths):
            live = self.current()
            if authority is not None:
                refused = self.refusal(loaded.model, authority)
                if refused is not None:
                    detail = {**refused.detail(), "comment": comment}
                    self.audit.record(author, "config.refused", detail, source, remote)
                    raise refused
            if confirm_seconds and live is None:
                raise MamoriError(
                    "最初の設定には --confirm を使えません（戻す先の設定がありません）",
                    "--confirm cannot be used for the first config: there is nothing to roll back to",
                    code="config.confirm_first",
                )
            previous = parse_config(live.config_text).model if live else None
            # If the live revision itself still waits for confirmation, a timeout must go back to the
            # last *confirmed* one, never make the unconfirmed one permanent.
            earlier = self.pending()
            fallback = earlier["previous"] if earlier else (live.id if live else None)
            if disk_state(self.ctx.paths.state_dir).level == "full":
                raise DiskFullError()  # the revision could not be recorded: change nothing
            try:
                apply_all(self.subsystems, loaded.model, previous)
            except MamoriError as exc:
                self.audit.record(author, "config.apply_failed", {"error": exc.text("en")}, source, remote)
                raise
            diff = readable_diff(live.config_text if live else None, text)
            status = "pending" if confirm_seconds else "applied"
            try:
                with self.ctx.db.transaction() as conn:
                    rev = self.revisions.add(conn, text, author, source, comment, diff, status)
                    if confirm_seconds:
                        pending = {"revision": rev.id, "previous": fallback,
                                   "deadline": wall() + confirm_seconds}  # fmt: skip
                        self.ctx.db.set_kv(PENDING_KEY, json.dumps(pending), conn)
                    else:
                        self.ctx.db.set_kv(PENDING_KEY, None, conn)
                    detail = {
                        "revision": rev.id,
                        "comment": comment,
                        "diff": diff,
                        "confirm_seconds": confirm_seconds,
                    }
                    self.audit.record(author, "config.apply", detail, source, remote, conn=conn)
                    # Inside the transaction: if the file cannot be written, the revision is not recorded either.
                    atomic_write(self.ctx.paths.config, text, mode=0o640)
            except (sqlite3.Error, OSError) as exc:
                # Recorded nowhere (the disk filled up meanwhile): the engines go back to the live revision.
                log.error("revision not recorded (%s); putting the live revision back", exc)
                if previous is not None:
                    apply_all(self.subsystems, previous, loaded.model)
                    self._restore_config_file(live.config_text if live else None)
                raise DiskFullError() from exc
        if confirm_seconds:
            self._start_confirm_timer()
        return rev

    def _restore_config_file(self, text: str | None) -> None:
        if text is None:
            return
        try:
            atomic_write(self.ctx.paths.config, text, mode=0o640)
        except OSError as exc:  # a full disk: the old file most likely was never replaced (temp + rename)
            log.error("config file not restored: %s", exc)

    def rollback(
        self,
        rev_id: int,
        author: str,
        source: str,
        remote: str = "",
        authority: Collection[str] | None = None,
    ) -> Revision:
        target = self.revisions.get(rev_id)
        if target is None:
            raise NotFoundError(f"リビジョン {rev_id} はありません", f"no revision {rev_id}")
        return self.apply(
            target.config_text,
            author,
            source,
            f"リビジョン {rev_id} に戻す",
            remote=remote,
            authority=authority,
        )

    def pending(self) -> dict | None:
        raw = self.ctx.db.get_kv(PENDING_KEY)
        return json.loads(raw) if raw else None

    def confirm(
        self,
        author: str,
        source: str,
        remote: str = "",
        revision: int | None = None,
        started_by: str | None = None,
    ) -> Revision:
        """Make the pending revision permanent. With `revision`: only if that revision is the pending one at
        the moment it is confirmed; with `started_by`: only if that account applied it. Both are checked
        under the apply lock, so a revert and someone else's apply cannot come between the check and the
        confirmation. A refusal raises ConfirmRefused and changes nothing (the caller audits it)."""
        with apply_lock(self.ctx.paths):
            pending = self.pending()
            if pending is None and revision is None:
                raise NotFoundError(
                    "確定を待っている変更はありません", "no change is waiting for confirmation"
                )
            if revision is not None and (pending is None or pending["revision"] != revision):
                named = self.revisions.get(revision)
                raise ConfirmRefused.not_pending(revision, named.status if named else "unknown")
            assert pending is not None
            if started_by is not None:
                rev = self.revisions.get(pending["revision"])
                if rev is None or rev.author != started_by:
                    raise ConfirmRefused.not_yours(pending["revision"], rev.author if rev else "?")
            with self.ctx.db.transaction() as conn:
                self.revisions.set_status(conn, pending["revision"], "applied")
                self.ctx.db.set_kv(PENDING_KEY, None, conn)
                self.audit.record(
                    author, "config.confirm", {"revision": pending["revision"]}, source, remote, conn=conn
                )
        rev = self.revisions.get(pending["revision"])
        assert rev is not None
        return rev

    def revert_if_unconfirmed(self, now: float | None = None) -> bool:
        """Put the previous revision back if a pending one passed its deadline. True if it reverted."""
        with apply_lock(self.ctx.paths):
            pending = self.pending()
            if pending is None or (now or wall()) < pending["deadline"]:
                return False
            failed = self.revisions.get(pending["revision"])
            previous = self.revisions.get(pending["previous"]) if pending["previous"] else None
            new_model = parse_config(failed.config_text).model if failed else None
            if previous is not None:
                apply_all(self.subsystems, parse_config(previous.config_text).model, new_model)
            with self.ctx.db.transaction() as conn:
                self.revisions.set_status(conn, pending["revision"], "reverted")
                if previous is not None:
                    self.revisions.set_status(conn, previous.id, "applied")
                self.ctx.db.set_kv(PENDING_KEY, None, conn)
                detail = {"revision": pending["revision"], "restored": previous.id if previous else None}
                self.audit.record("system", "config.auto_revert", detail, "timer", conn=conn)
            if previous is not None:
                atomic_write(self.ctx.paths.config, previous.config_text, mode=0o640)
        log.warning("revision %s was not confirmed in time; reverted", pending["revision"])
        return True

    def reconcile(self) -> Revision | None:
        """At daemon start: make the live revision live in the kernel again (after a reboot or crash)."""
        self.revert_if_unconfirmed()
        live = self.current()
        if live is None:
            return None
        model = parse_config(live.config_text).model
        with apply_lock(self.ctx.paths):
            # The live revision was working before: if one engine now fails, the others keep it.
            apply_all(self.subsystems, model, model)
        return live

    def _start_confirm_timer(self) -> None:
        """A detached process that sleeps until the deadline and reverts unless confirmed."""
        # -I: never import from the working directory (-m puts it first on sys.path).
        argv = [sys.executable, "-I", "-m", "appliance.cli", "--config", str(self.ctx.paths.config),
                "--state-dir", str(self.ctx.paths.state_dir), "config", "confirm-timer"]  # fmt: skip
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
