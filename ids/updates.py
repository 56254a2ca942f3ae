"""Rule updates, end to end: stage the new source, test it with `suricata -T` together with the live config,
swap it in, make it live with Suricata's `reload-rules`, and roll back if any step fails.

Sources: a directory or .tar.gz (offline: uploaded, or a USB stick), or suricata-update (online, or
offline with a file:// URL). Every update is recorded in the audit log, whether it landed or not.

Under the apply lock (appliance.apply.apply_lock), like every other change to the running system: from
staging to the reload, so a config apply never interleaves with an update. Without it, an apply could
build its rules from a source directory being renamed under it, or an update tested and reloaded with
the config that was live when it started would put the IDS part of a config applied meanwhile back.
Why the whole stage -> `suricata -T` -> swap -> reload and not only the swap: what is tested must be
what goes live, with the config that is live then (read again under the lock). A config apply waits for
the test (about a minute for ET Open), as it waits for its own `suricata -T` when the IDS config changes.
Only the download by suricata-update (network, up to ten minutes) happens before the lock is taken.
Non-goal: a rule update is not a config revision; it is audited (`ids.rules.update`) but not in the
revision history, and a config rollback does not bring older rules back.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from appliance.apply import apply_lock
from appliance.audit import audit_log
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.revisions import live_config
from appliance.subsystem import Context
from ids import sources
from ids.engine import build_rules, check_in_staging
from ids.subsystem import IdsSubsystem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateResult:
    source_rules: int
    enabled: int
    total: int
    test_seconds: float
    sha256: str


def _live_config(ctx: Context, cfg: MamoriConfig) -> MamoriConfig:
    """The config live now (read under the lock: an apply may have landed since the caller read `cfg`);
    `cfg` itself before the first revision."""
    live = live_config(ctx.db)
    return live if live is not None else cfg


def update_rules(
    ctx: Context, cfg: MamoriConfig, src: Path | None = None, url: str | None = None,
    actor: str = "system", origin: str = "cli",
) -> UpdateResult:  # fmt: skip
    """Install new third-party rules (from `src`, or fetched by suricata-update from `url`/ET Open).

    Never call this with the apply lock held (flock on a second descriptor in one process waits for ever)."""
    audit = audit_log(ctx)
    detail: dict = {"src": str(src) if src else None, "url": url}
    try:
        fetched = src if src is not None else sources.fetch_with_suricata_update(ctx.paths, url)
        with apply_lock(ctx.paths):
            result = _install(ctx, _live_config(ctx, cfg), fetched)
    except MamoriError as exc:
        audit.record(actor, "ids.rules.update_failed", {**detail, "error": exc.text("en")}, source=origin)
        raise
    audit.record(actor, "ids.rules.update", {**detail, **result.__dict__}, source=origin)
    log.info("rules updated: %s", result)
    return result


def _install(ctx: Context, cfg: MamoriConfig, fetched: Path) -> UpdateResult:
    """Stage, test, swap, reload; the caller holds the apply lock."""
    staged = sources.stage(ctx.paths, fetched)
    subsystem = IdsSubsystem(ctx)
    rendered = subsystem.render(cfg)
    built = build_rules(ctx.paths, rendered, source_dir=staged)
    try:
        seconds = check_in_staging(ctx.paths, rendered, built.text)
    except MamoriError:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    info = sources.commit_staged(ctx.paths)
    try:
        subsystem.apply(rendered)
    except MamoriError:
        sources.rollback(ctx.paths)
        subsystem.apply(subsystem.render(cfg))
        raise
    return UpdateResult(info.rules, built.enabled, built.total, seconds, info.sha256)
