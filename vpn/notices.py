"""Tells the clinic, through its notification channels, when someone comes in from outside.

Ransomware reached Japanese hospitals through vendors' remote-maintenance connections: the clinic should
know, as it happens, that its vendor is connected, and that a doctor's VPN login was locked after wrong
codes (a guessed password). The events are read from the audit log, where the VPN portal already records
them (`vpn.signin`, `vpn.user.locked`), so the portal's request never waits on a mail server and nothing
is lost when the daemon restarts: a cursor in the kv table remembers the last entry handled, and moves in
the same transaction that writes the message to the notification outbox (appliance.notify.outbox), whose
senders deliver it with retries. On its very first run the cursor starts at the newest entry (history is
not replayed as news).

Non-goals: doctors' ordinary sign-ins (daily routine, not news) and rate limiting (there are few events).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.audit import AuditEntry, entries_after, newest_id
from appliance.clock import clinic_time, wall
from appliance.config.model import MamoriConfig
from appliance.errors import NotFoundError
from appliance.notify import Message, channels
from appliance.notify.outbox import enqueue
from appliance.subsystem import Context

log = logging.getLogger(__name__)
CURSOR_KEY = "vpn.notice_cursor"
ACTIONS = ("vpn.signin", "vpn.user.locked", "vpn.ddns.failing")
POLL_S = 5.0


@dataclass(frozen=True)
class WindowInfo:
    reason: str
    targets: tuple[str, ...]
    ends: float


def _hhmm(ts: float, tz: str) -> str:
    """Clock time in the clinic's time zone (the box itself may run in UTC)."""
    return clinic_time(ts, tz).strftime("%H:%M")


def compose(
    cfg: MamoriConfig, entry: AuditEntry, window: Callable[[int], WindowInfo | None]
) -> Message | None:
    """The message for one audit entry, or None when it is not news (a doctor's ordinary sign-in)."""
    users = {u.name: u for u in cfg.vpn.users}
    user = users.get(entry.actor)
    who = f"{user.display_name}（{entry.actor}）" if user and user.display_name else f"{entry.actor} "
    clinic, tz = cfg.clinic.name, cfg.clinic.timezone
    if entry.action == "vpn.signin":
        if user is None or user.role != "vendor":
            return None
        lines = [f"{who}が {_hhmm(entry.ts, tz)} に遠隔保守のため接続しました。"]
        info = window(int(entry.detail["window"])) if entry.detail.get("window") else None
        if info is not None:
            targets = "、".join(info.targets) or "—"
            lines.append(
                f"承認された作業: {info.reason}（対象: {targets}）。{_hhmm(info.ends, tz)} に自動で切断されます。"
            )
        lines.append("心当たりがない場合は、管理画面の「VPN」から接続を止め、保守業者に確認してください。")
        return Message(
            f"【Mamori】保守業者が接続しました（{clinic}）", "\n".join(lines), severity=2, kind="vpn"
        )
    if entry.action == "vpn.user.locked":
        body = (
            f"{who}の VPN ログインが、確認コードやパスワードの誤りが続いたためロックされました"
            f"（{_hhmm(entry.ts, tz)}）。\n"
            "ご本人が操作していない場合、パスワードが他人に知られているおそれがあります。"
            "ご本人に確認し、パスワードを変えてから管理画面でロックを解除してください。"
        )
        return Message(f"【Mamori】VPN のログインをロックしました（{clinic}）", body, severity=1, kind="vpn")
    if entry.action == "vpn.ddns.failing":  # vpn/ddns_worker.py, once per lasting failure
        body = (
            f"医師がご自宅から IPv6 で接続するための名前（{entry.detail.get('name', '')}）を、"
            f"{_hhmm(float(entry.detail.get('since', entry.ts)), tz)} から更新できていません。\n"
            f"理由: {entry.detail.get('error', '')}\n"
            "回線の IPv6 アドレスが変わっていると、ご自宅から接続できないことがあります。保守業者にご連絡ください。"
        )
        return Message(f"【Mamori】IPv6 の名前を更新できません（{clinic}）", body, severity=2, kind="vpn")
    return None


class VpnNoticeWorker:
    """Daemon worker: writes the news among new audit entries to the outbox and moves the cursor past them,
    in one transaction per entry."""

    name = "vpn-notices"

    def __init__(
        self,
        ctx: Context,
        cfg: MamoriConfig,
        poll: float = POLL_S,
    ) -> None:
        self.ctx, self.cfg, self.poll = ctx, cfg, poll
        self.channels = [c.name for c in channels(cfg, ctx.paths.keys_dir)]

    def _window(self, window_id: int) -> WindowInfo | None:
        from vpn.windows import WindowStore

        try:
            w = WindowStore(self.ctx.db).get(window_id)
        except NotFoundError:
            return None
        return WindowInfo(w.reason, w.targets, w.ends)

    def step(self) -> list[Message]:
        """One pass; returns the messages written to the outbox (for tests and the log)."""
        cursor = self.ctx.db.get_kv(CURSOR_KEY)
        if cursor is None:  # first run: start at the newest entry, history is not news
            self.ctx.db.set_kv(CURSOR_KEY, str(newest_id(self.ctx.db)))
            return []
        queued = []
        for entry in entries_after(self.ctx.db, int(cursor), ACTIONS):
            msg = compose(self.cfg, entry, self._window)
            with self.ctx.db.transaction() as conn:
                if msg is not None:
                    enqueue(conn, msg, self.channels, wall())
                    queued.append(msg)
                self.ctx.db.set_kv(CURSOR_KEY, str(entry.id), conn=conn)
        return queued

    def run(self, stop: threading.Event) -> None:
        while True:
            self.step()
            if stop.wait(self.poll):
                return
