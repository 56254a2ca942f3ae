"""How old the third-party detection rules (ET Open) are, for the dashboard and `mamori ids status`.

The time of an update is the installed source directory's modification time: the staged files are written
just before it is swapped in (ids/sources.py `commit_staged`), and it is what the monthly report's patch
item reads too. Only an installed source can be stale; a box without ET Open is a different matter (the
checklist's 2⑪ item says so), not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.model import MamoriConfig
from appliance.paths import Paths
from ids.model import IdsConfig
from ids.sources import current_source

DAY = 86400


@dataclass(frozen=True)
class RulesAge:
    updated_at: float | None  # None: no ET Open rules installed
    days: int | None
    max_days: int

    @property
    def stale(self) -> bool:
        return self.days is not None and self.days > self.max_days

    def warning(self, lang: str = "ja") -> str | None:
        if not self.stale:
            return None
        if lang == "en":
            return f"the intrusion detection rules have not been updated for {self.days} days"
        return f"侵入検知のルールが {self.days} 日間更新されていません"


def rules_age(paths: Paths, cfg: MamoriConfig | None, now: float) -> RulesAge:
    """The age of the installed rules in whole days (a negative age, from a clock set back, counts as 0)."""
    max_days = (cfg.ids if cfg is not None else IdsConfig()).rules_max_age_days
    source = current_source(paths)
    if source is None:
        return RulesAge(None, None, max_days)
    updated = source.stat().st_mtime
    return RulesAge(updated, max(0, int((now - updated) // DAY)), max_days)


def rules_warning(paths: Paths, cfg: MamoriConfig | None, now: float) -> str | None:
    """「侵入検知のルールが N 日間更新されていません」 when the rules are older than ids.rules_max_age_days
    (and the IDS is on), else None."""
    if cfg is not None and not cfg.ids.enabled:
        return None
    return rules_age(paths, cfg, now).warning("ja")
