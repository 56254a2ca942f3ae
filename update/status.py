"""What the update page and `mamori update status` show: the running and fallback version, the last result
(the installer's, and after a reboot the health check's: good or rolled back), what is staged or available,
and an install in progress with its progress lines. Read-only: files of the update directory, the database's
last check, the live config's update section."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.clock import wall
from appliance.config.model import MamoriConfig
from appliance.subsystem import Context
from update import actions, stage
from update.box import UpdatePaths, box_info, read_json
from update.model import UpdateConfig

ROLLED_BACK_JA = "新しい版が確認に失敗したため、元の版に戻しました"


@dataclass
class UpdateStatus:
    running: str | None  # None: not an image box
    arch: str
    age_days: int | None  # of the running image (IMAGE_VERSION's time)
    image_box: bool
    fallback: str | None
    trial: dict | None  # boot.json's trial: version, outcome
    result: dict | None  # the installer's last result.json
    in_progress: dict | None  # a request waiting or being installed
    waiting: bool = False  # the request is not taken by the root side yet (it can still be withdrawn)
    progress: list[dict] = field(default_factory=list)
    staged: dict | None = None
    staged_rolled_back: bool = False  # the staged version already failed its trial boot here: not offered
    last_check: dict | None = None
    source: str | None = None
    auto: str = "notify"
    quiet_hours: str = "02:00-04:00"

    @property
    def percent(self) -> int:
        if not self.progress:
            return 0
        try:
            return max(0, min(100, int(self.progress[-1].get("percent", 0))))
        except (TypeError, ValueError):
            return 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


def update_status(ctx: Context, cfg: MamoriConfig | None = None) -> UpdateStatus:
    upaths = UpdatePaths.of(ctx.paths)
    box = box_info(upaths)
    ucfg = cfg.update if cfg is not None else UpdateConfig()
    try:
        age = int((wall() - upaths.image_version_file.stat().st_mtime) // 86400) if box.version else None
    except OSError:
        age = None
    boot = box.boot or {}
    fallback = boot.get("fallback") if isinstance(boot.get("fallback"), dict) else None
    trial = boot.get("trial") if isinstance(boot.get("trial"), dict) else None
    pending = stage.in_progress(upaths)
    staged = stage.current_staged(upaths)
    return UpdateStatus(
        running=str(box.version) if box.version else None,
        arch=box.arch,
        age_days=max(age, 0) if age is not None else None,
        image_box=box.version is not None and box.has_fallback_slot,
        fallback=str(fallback["version"]) if fallback and fallback.get("version") else None,
        trial=trial,
        result=read_json(upaths.result),
        in_progress=pending,
        waiting=upaths.request.exists(),
        progress=stage.progress(upaths, pending.get("id") if pending else None, limit=50),
        staged=asdict(staged) if staged else None,
        staged_rolled_back=bool(staged and box.rolled_back(staged.version)),
        last_check=actions.last_check(ctx),
        source=ucfg.source,
        auto=ucfg.auto,
        quiet_hours=ucfg.quiet_hours,
    )
