"""How full the state file system is, and what the box says about it.

The state directory (database, keys, rules, backups) lives on its own partition on a real box, so a full disk
stops the records, never the system: the kernel keeps enforcing the firewall whatever happens here, workers that
cannot write are restarted by the daemon until they can, and SQLite rolls back what it could not finish.
This module only measures (statvfs: cheap, no writes, so it works on a full disk) and words the result; the web UI
and the CLI ask it directly, and the daemon's DiskWatch says in the log when the state changes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import MamoriError
from appliance.subsystem import Context

log = logging.getLogger(__name__)

WARN_USED = 0.90  # the vendor's alert rule uses the same mark
FULL_FREE_BYTES = 8 << 20  # below this, SQLite's next checkpoint or a rule update may not fit
CHECK_EVERY_S = 10.0


class DiskFullError(MamoriError):
    code = "disk.full"

    def __init__(self) -> None:
        super().__init__(
            "記録用のディスクがいっぱいのため、変更を保存できませんでした。何も変わっていません。保守業者にご連絡ください。",
            "the state disk is full: the change could not be recorded, so nothing was changed",
        )


@dataclass(frozen=True)
class DiskState:
    path: str
    total: int
    free: int  # bytes an unprivileged writer could still use

    @property
    def used_ratio(self) -> float:
        return 1.0 - self.free / self.total if self.total else 1.0

    @property
    def level(self) -> str:
        """'full', 'warn' or 'ok'."""
        if self.free < FULL_FREE_BYTES:
            return "full"
        return "warn" if self.used_ratio >= WARN_USED else "ok"

    def text_ja(self) -> str:
        percent = round(self.used_ratio * 100)
        if self.level == "full":
            return (
                "記録用のディスクがいっぱいです。通信の遮断は続いていますが、新しい記録を保存できません。"
                "保守業者にご連絡ください。"
            )
        if self.level == "warn":
            return f"記録用のディスクが残りわずかです（{percent}% 使用中）。"
        return f"記録用のディスク: {percent}% 使用中"

    def text_en(self) -> str:
        percent = round(self.used_ratio * 100)
        if self.level == "full":
            return f"the state disk is full ({self.free >> 20} MiB free): the firewall still enforces, new records are lost"
        return f"state disk {percent}% used ({self.free >> 20} MiB free)"


def disk_state(path: Path) -> DiskState:
    """The state of the file system holding `path` (the state directory)."""
    st = os.statvfs(path)
    return DiskState(str(path), st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


class DiskWatch:
    """A daemon worker that logs when the state disk becomes full or has room again (it cannot write the audit
    log while full; the log line reaches the journal, which lives elsewhere)."""

    name = "disk-watch"

    def __init__(self, ctx: Context, every: float = CHECK_EVERY_S) -> None:
        self.ctx, self.every = ctx, every
        self.level = "ok"

    def check(self) -> DiskState:
        state = disk_state(self.ctx.paths.state_dir)
        if state.level != self.level:
            if state.level == "full":
                log.error("%s", state.text_en())
            elif self.level == "full":
                log.warning("the state disk has room again (%s)", state.text_en())
            elif state.level == "warn":
                log.warning("%s", state.text_en())
            self.level = state.level
        return state

    def run(self, stop: threading.Event) -> None:
        while True:
            self.check()
            if stop.wait(self.every):
                return
