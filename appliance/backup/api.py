"""The three calls everything else uses: create_backup, restore_backup, test_backup.

Each records what it did: in the audit log (who, what) and in the backup tables (evidence for the MHLW
checklist). A refused restore or a failed test changes nothing of the box; only a test records its
(failed) result, because a failed restore test is itself evidence the clinic needs to see.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance import daemonlock
from appliance.apply import apply_lock
from appliance.audit import AuditLog, audit_log
from appliance.backup import archive as archive_mod
from appliance.backup import ports as ports_mod
from appliance.backup import records
from appliance.backup.errors import BackupError
from appliance.backup.manifest import Manifest
from appliance.backup.passphrase import check_strength
from appliance.backup.ports import PortPlan
from appliance.backup.restore import Unpacked, swap_in, unpack
from appliance.backup.store import default_dir, new_path, prune
from appliance.child_access import hand_over, lookup_children
from appliance.clock import show, wall
from appliance.config.load import load_config
from appliance.errors import MamoriError
from appliance.fileio import atomic_write
from appliance.paths import Paths
from appliance.revisions import RevisionStore
from appliance.storage import Database
from appliance.subsystem import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestResult:
    """The outcome of a restore test. `error_ja`/`error_en` are empty when ok."""

    id: int
    ts: float
    archive: Path
    ok: bool
    manifest: Manifest | None
    error_code: str = ""
    error_ja: str = ""
    error_en: str = ""

    def text(self, lang: str = "ja", tz: str | None = None) -> str:
        if self.ok and self.manifest is not None:
            n = len(self.manifest.files)
            made = show(self.manifest.created_ts, tz)
            if lang == "en":
                return f"restore test passed: {n} files verified (backup of {made})"
            return f"復元テスト成功: {n} 個のファイルを確認しました（{made} のバックアップ）"
        return (f"restore test FAILED: {self.error_en}" if lang == "en"
                else f"復元テスト失敗: {self.error_ja}")  # fmt: skip


def clinic_zone(paths: Paths) -> str | None:
    """clinic.timezone, for the times people read; None (the default zone) when the config does not load:
    a box with a broken config is still backed up."""
    try:
        return load_config(paths.config).model.clinic.timezone
    except (MamoriError, OSError) as exc:
        log.info("backup: no clinic timezone from the config (%s); using the default", exc)
        return None


def _audit(ctx: Context) -> AuditLog:
    return audit_log(ctx)


def _staging(ctx: Context, prefix: str) -> Path:
    """A private directory next to the state directory: same filesystem, so renames are atomic."""
    parent = ctx.paths.state_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".mamori-{prefix}-", dir=parent))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_backup_error(exc: OSError | sqlite3.Error) -> BackupError:
    return BackupError(
        f"バックアップの読み書きに失敗しました（{exc}）", f"backup I/O failed ({exc})", code="backup.io"
    )


def create_backup(
    ctx: Context,
    passphrase: str,
    out_dir: Path | None = None,
    *,
    out_file: Path | None = None,
    keep: int | None = None,
    actor: str = "system",
    source: str = "cli",
    kind: str = "manual",
    now: float | None = None,
) -> Path:
    """Write an encrypted archive of the box into `out_dir` (default state_dir/backups) or `out_file`.

    With `keep`, older generations in `out_dir` beyond the newest `keep` are deleted afterwards.
    """
    check_strength(passphrase)
    ctx.db.migrate()
    directory = Path(out_file).parent if out_file else Path(out_dir or default_dir(ctx.paths))
    staging = _staging(ctx, "backup")
    started = wall() if now is None else now
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        manifest = archive_mod.build_manifest(ctx.paths, staging, {directory}, started)
        target = _write_atomically(directory, Path(out_file) if out_file else None, started, passphrase, manifest,
                                   staging, clinic_zone(ctx.paths))  # fmt: skip
    except (BackupError, OSError, sqlite3.Error) as exc:
        err = exc if isinstance(exc, BackupError) else _as_backup_error(exc)
        log.error("backup: creating a backup failed: %s", err)
        records.record_run(
            ctx.db, kind=kind, ok=False, error_code=err.code, error=err.text("en"), actor=actor
        )
        _audit(ctx).record(actor, "backup.create_failed", {"error": err.text("en")}, source=source)
        raise err from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size, digest = target.stat().st_size, _sha256(target)
    with ctx.db.transaction() as conn:
        records.record_run(ctx.db, conn, kind=kind, archive=str(target), size=size, sha256=digest,
                           files=len(manifest.files), ok=True, actor=actor)  # fmt: skip
        _audit(ctx).record(actor, "backup.create", {"archive": str(target), "size": size, "sha256": digest,
                                                    "files": len(manifest.files)}, source=source, conn=conn)  # fmt: skip
    if keep is not None and out_file is None:
        pruned = prune(directory, keep)
        if pruned:
            _audit(ctx).record(actor, "backup.prune", {"deleted": [p.name for p in pruned]}, source=source)
    return target


def _write_atomically(directory: Path, out_file: Path | None, when: float, passphrase: str, manifest: Manifest,
                      staging: Path, tz: str | None = None) -> Path:  # fmt: skip
    """Encrypt to a unique temp file, fsync, then give it its name.

    A generation name is claimed with link(), which fails if the name exists: two backups started in
    the same second (the daemon and a person) never overwrite each other. `--out` replaces its target.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=".mamori-backup-", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            archive_mod.write_archive(out, passphrase, manifest, staging)
            out.flush()
            os.fsync(out.fileno())
        if out_file is not None:
            os.replace(tmp, out_file)
            return out_file
        for _ in range(100):
            target = new_path(directory, when, tz)
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
        raise BackupError("バックアップのファイル名を決められません", "cannot pick a backup file name")
    finally:
        tmp.unlink(missing_ok=True)


def restore_backup(
    ctx: Context,
    archive: Path,
    passphrase: str,
    *,
    actor: str = "system",
    source: str = "cli",
    ports: Mapping[str, str] | None = None,
    box_ports: Collection[str] | None = None,
    on_plan: Callable[[PortPlan], None] | None = None,
) -> Manifest:
    """Replace the box's config and state with the archive's. Raises BackupError and changes nothing if not ok.

    Before anything is swapped, the ports the backup's config names are compared with this box's
    (`box_ports`, default: the kernel's); other ports need a `ports` mapping (old -> new), which is applied
    to the config and recorded, in the restored database, as a new live revision with its audit entry.
    `on_plan` sees the plan (and its diff) after it was validated and before the swap. A refusal for ports
    writes nothing at all, not even an audit entry: it is a question back to the person, who holds the
    passphrase. The swap happens under the apply lock, so no config change can interleave. The caller
    then makes the restored revision live in the kernel (`reconcile_after_restore`; the CLI does).
    """
    staging = _staging(ctx, "restore")
    previous = staging / "previous"
    succeeded = False
    try:
        unpacked = unpack(Path(archive), passphrase, staging)
        plan = _port_plan(unpacked, ports, box_ports)
        if on_plan is not None:
            on_plan(plan)
        if plan.changed:
            _record_port_mapping(unpacked, plan, actor, source)
        with apply_lock(ctx.paths):
            swap_in(ctx.paths, unpacked, previous)
        succeeded = True
    except (OSError, sqlite3.Error) as exc:
        raise _as_backup_error(exc) from exc
    finally:
        if succeeded or not previous.exists():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            log.critical(
                "backup: undo after a failed restore did not finish; the old state is in %s", previous
            )
    manifest = unpacked.manifest
    ctx.db.migrate()  # an older version's database moves into db/ here (appliance.storage)
    children = lookup_children()
    if children is not None:  # the restored files are root's alone; the running web UI and portal use them
        hand_over(ctx.paths, children, make_keys=False)
    detail = {"archive": str(archive), "created": manifest.created, "software_version": manifest.software_version,
              "files": len(manifest.files), "ports": plan.renames}  # fmt: skip
    with ctx.db.transaction() as conn:
        records.record_run(ctx.db, conn, kind="restore", archive=str(archive), files=len(manifest.files), ok=True,
                           actor=actor)  # fmt: skip
        _audit(ctx).record(actor, "backup.restore", detail, source=source, conn=conn)
    return manifest


def inspect_restore(
    ctx: Context,
    archive: Path,
    passphrase: str,
    *,
    ports: Mapping[str, str] | None = None,
    box_ports: Collection[str] | None = None,
) -> PortPlan:
    """What a restore of `archive` would do to the ports (and the diff), without changing anything.
    Raises PortMismatchError when the ports differ and `ports` does not map them."""
    staging = _staging(ctx, "inspect")
    try:
        return _port_plan(unpack(Path(archive), passphrase, staging), ports, box_ports)
    except (OSError, sqlite3.Error) as exc:
        raise _as_backup_error(exc) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _port_plan(
    unpacked: Unpacked, ports: Mapping[str, str] | None, box_ports: Collection[str] | None
) -> PortPlan:
    text = unpacked.config.read_text(encoding="utf-8")
    return ports_mod.plan(text, ports_mod.detect_ports() if box_ports is None else box_ports, ports)


def _record_port_mapping(unpacked: Unpacked, plan: PortPlan, actor: str, source: str) -> None:
    """In the staged copy, before the swap: the mapped config becomes the live revision (audited there,
    so it continues the backup's audit chain) and the config file that will be installed."""
    from appliance.service import PENDING_KEY

    staged = Paths(config=unpacked.config, state_dir=unpacked.state)
    db = Database(staged.db)
    db.migrate()
    store = RevisionStore(db)
    comment = plan.comment()
    with db.transaction() as conn:
        rev = store.add(conn, plan.text, actor, source, comment, plan.diff(), "applied")
        db.set_kv(PENDING_KEY, None, conn)  # a restore is confirmed by the person who asked for it
        detail = {"revision": rev.id, "comment": comment, "diff": rev.diff, "confirm_seconds": None,
                  "ports": plan.renames}  # fmt: skip
        AuditLog(db, staged.keys_dir / "audit.key").record(actor, "config.apply", detail, source, conn=conn)
    mode = unpacked.config.stat().st_mode & 0o777
    atomic_write(unpacked.config, plan.text, mode=mode)


def test_backup(
    ctx: Context, archive: Path, passphrase: str, *, actor: str = "system", source: str = "cli"
) -> TestResult:
    """Decrypt and verify `archive` in a temp directory (the live box is untouched) and record the result."""
    archive = Path(archive)
    ctx.db.migrate()
    staging = _staging(ctx, "test")
    now = wall()
    manifest: Manifest | None = None
    err: BackupError | None = None
    try:
        manifest = unpack(archive, passphrase, staging).manifest
    except BackupError as exc:
        err = exc
    except (OSError, sqlite3.Error) as exc:
        err = _as_backup_error(exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    digest = _sha256(archive) if archive.is_file() else ""
    fields = {"ts": now, "archive": str(archive), "archive_sha256": digest, "ok": err is None, "actor": actor,
              "backup_created": manifest.created if manifest else "", "files": len(manifest.files) if manifest else 0,
              "error_code": err.code if err else "", "error": err.text("en") if err else ""}  # fmt: skip
    with ctx.db.transaction() as conn:
        test_id = records.record_test(ctx.db, conn, **fields)
        _audit(ctx).record(actor, "backup.test", {k: fields[k] for k in ("archive", "ok", "error_code")},
                           source=source, conn=conn)  # fmt: skip
    if err is not None:
        log.warning("backup: restore test of %s failed: %s", archive, err.text("en"))
        return TestResult(test_id, now, archive, False, None, err.code, err.text("ja"), err.text("en"))
    return TestResult(test_id, now, archive, True, manifest)


def reconcile_after_restore(ctx: Context) -> None:
    """Apply the restored live revision to the kernel. A failure here is reported, not undone: the
    restored state is the one the clinic asked for, and `mamori daemon` retries it at start."""
    from appliance.service import ConfigService

    try:
        ConfigService(ctx).reconcile()
    except MamoriError as exc:
        log.error("backup: restored, but applying the restored config failed: %s", exc.text("en"))
        raise BackupError(
            "復元はできましたが、設定の反映に失敗しました: " + exc.text("ja"),
            "restored, but applying the restored config failed: " + exc.text("en"),
            code="backup.apply",
        ) from exc


def reload_running_daemon(paths: Paths) -> bool:
    """Tell a running `mamori daemon` (its pid file is in run/, which a restore keeps) to re-apply and restart
    its workers on the restored state: SIGHUP, as `systemctl reload mamori` sends. False if none runs."""
    pid = daemonlock.running_pid(paths.run_dir)  # None for a stale pid file: never signal a stranger
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    log.info("backup: told the running daemon (pid %d) to reload the restored state", pid)
    return True
