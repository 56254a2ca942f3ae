"""Rule updates, end to end: stage the new source, test it with `suricata -T` together with the live config,
swap it in, make it live with Suricata's `reload-rules`, and roll back if any step fails.

Sources: a directory or .tar.gz (offline: uploaded, or a USB stick), or suricata-update (online, or
offline with a file:// URL). Every update is recorded in the audit log, whether it landed or not.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from appliance.audit import AuditLog
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
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


def update_rules(
    ctx: Context, cfg: MamoriConfig, src: Path | None = None, url: str | None = None,
    actor: str = "system", origin: str = "cli",
) -> UpdateResult:  # fmt: skip
    """Install new third-party rules (from `src`, or fetched by suricata-update from `url`/ET Open)."""
    audit = AuditLog(ctx.db)
    detail: dict = {"src": str(src) if src else None, "url": url}
    try:
        fetched = src if src is not None else sources.fetch_with_suricata_update(ctx.paths, url)
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
    except MamoriError as exc:
        audit.record(actor, "ids.rules.update_failed", {**detail, "error": exc.text("en")}, source=origin)
        raise
    result = UpdateResult(info.rules, built.enabled, built.total, seconds, info.sha256)
    audit.record(actor, "ids.rules.update", {**detail, **result.__dict__}, source=origin)
    log.info("rules updated: %s", result)
    return result
