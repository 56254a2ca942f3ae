"""`mamori status`: is the box doing its job, in a few lines a person on the phone with the vendor can read out.

It reads only (no writes, so it answers on a full disk): the daemon's PID file and /proc, the live revision, the
state disk, the clock notice (appliance.clockwatch) and notification channels that cannot deliver
(appliance.notify.outbox). Exit code 0 when all is well, 1 when something needs someone (daemon down, disk full,
notifications failing), so a monitoring check can use it. Each area's own detail stays in its own `status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance import clock, daemonlock
from appliance.clockwatch import ClockNotice, current_notice
from appliance.disk import DiskState, disk_state
from appliance.notify.outbox import Trouble, trouble_text, troubles
from appliance.revisions import Revision, RevisionStore
from appliance.subsystem import Context


@dataclass(frozen=True)
class BoxStatus:
    daemon_pid: int | None
    revision: Revision | None
    disk: DiskState
    clock: ClockNotice | None
    notify: list[Trouble] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.daemon_pid is not None and self.disk.level != "full" and not self.notify

    def lines_ja(self, tz: str | None = None) -> list[str]:
        lines = [
            f"常駐プロセス: 動作中（PID {self.daemon_pid}）" if self.daemon_pid
            else "常駐プロセス: 止まっています（通信の遮断は最後の設定のまま続いています）",
            f"設定: リビジョン {self.revision.id}（{clock.show(self.revision.created_at, tz)}）" if self.revision
            else "設定: まだ反映されていません",
            self.disk.text_ja(),
        ]  # fmt: skip
        if self.clock is not None:
            lines.append(self.clock.text_ja(tz))
        if self.notify:
            lines.append(f"{trouble_text(self.notify)}。保守業者にご連絡ください。")
        return lines

    def lines_en(self, tz: str | None = None) -> list[str]:
        lines = [
            f"daemon: running (pid {self.daemon_pid})" if self.daemon_pid
            else "daemon: not running (the kernel keeps the last policy)",
            f"config: revision {self.revision.id} ({clock.show(self.revision.created_at, tz)})" if self.revision
            else "config: none applied yet",
            self.disk.text_en(),
        ]  # fmt: skip
        if self.clock is not None:
            lines.append(self.clock.text_en(tz))
        lines += [f"notifications: {t.channel} undelivered: {t.detail or 'waiting'}" for t in self.notify]
        return lines


def daemon_pid(ctx: Context) -> int | None:
    """The running daemon's PID (appliance.daemonlock: only while it holds its lock)."""
    return daemonlock.running_pid(ctx.paths.run_dir)


def box_status(ctx: Context) -> BoxStatus:
    return BoxStatus(
        daemon_pid(ctx), RevisionStore(ctx.db).live(), disk_state(ctx.paths.state_dir), current_notice(ctx),
        troubles(ctx.db),
    )  # fmt: skip
