"""VPN portal sessions: sign-in (policy + password + TOTP) admits the tunnel address in the firewall;
logout, expiry, a disabled user, a lockout or the end of a vendor's window revoke it and cut its
connections. Every decision goes to the audit log.

Who is signing in is known from the tunnel address the request came from (WireGuard only accepts a
peer's own AllowedIPs, so it cannot be spoofed from another device); the form only proves it is him.
The admitted address is always the device's IPv4 tunnel address: that is what the firewall sets hold.

Order matters where the kernel and the database can disagree: a session is marked ended only after its
revoke worked in the kernel; one whose revoke failed stays open with `revoke_pending` set, and the expiry
worker retries it. A sign-in writes its row before it admits, so an admitted address always has one.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from appliance import clockwatch
from appliance.audit import audit_log
from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError, MamoriError
from appliance.subsystem import Context
from vpn.credentials import Credentials
from vpn.gate import FirewallGate
from vpn.model import VpnUser
from vpn.policy import Decision, decide
from vpn.store import Device, DeviceStore
from vpn.windows import WindowStore

log = logging.getLogger(__name__)

# Why a session ended (stable codes stored in vpn_sessions.end_reason) and how the clinic reads them.
END_REASON_JA = {
    "logout": "ログアウト", "expired": "時間切れ", "window_end": "時間枠の終了", "locked": "ロック",
    "disabled": "停止", "replaced": "再サインイン", "reissued": "端末の再発行", "revoked": "端末の無効化",
    "admit_failed": "許可の失敗",
}  # fmt: skip


@dataclass(frozen=True)
class Session:
    id: int
    user: str
    tunnel_ip: str
    window_id: int | None
    started: float
    expires: float
    ended: float | None
    end_reason: str
    remote: str
    revoke_pending: str = ""


# What a failed revoke can raise: the firewall's typed errors, a missing or hung conntrack.
REVOKE_ERRORS = (MamoriError, OSError, subprocess.SubprocessError)


class Gate(Protocol):
    def admit(self, user: str, ip: str, timeout_s: int) -> None: ...

    def revoke(self, user: str, ip: str) -> int: ...


def _row(r: sqlite3.Row) -> Session:
    return Session(r["id"], r["user"], r["tunnel_ip"], r["window_id"], r["started"], r["expires"], r["ended"],
                   r["end_reason"], r["remote"], r["revoke_pending"])  # fmt: skip


class SessionManager:
    def __init__(
        self, ctx: Context, config: Callable[[], MamoriConfig], clock: Callable[[], float] = time.time,
        gate: Gate | None = None,
    ) -> None:  # fmt: skip
        self.ctx = ctx
        self.config = config
        self.clock = clock
        self.gate: Gate = gate or FirewallGate(ctx, config)
        self.devices = DeviceStore(ctx.db, clock)
        self.creds = Credentials(ctx.db, clock)
        self.windows = WindowStore(ctx.db, clock)
        self.audit = audit_log(ctx)

    def who(self, remote_ip: str) -> tuple[Device | None, VpnUser | None]:
        try:
            ip = str(ipaddress.ip_address(remote_ip))
        except ValueError:
            return None, None
        dev = self.devices.by_tunnel_ip(ip)
        if dev is None:
            return None, None
        return dev, next((u for u in self.config().vpn.users if u.name == dev.user), None)

    def current(self, remote_ip: str) -> Session | None:
        dev, _ = self.who(remote_ip)
        if dev is None:
            return None
        with self.ctx.db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM vpn_sessions WHERE tunnel_ip = ? AND ended IS NULL AND revoke_pending = ''"
                " AND expires > ? ORDER BY id DESC",
                (dev.ip4, self.clock()),
            ).fetchone()
        return _row(row) if row else None

    def sign_in(self, remote_ip: str, password: str, code: str) -> Decision:
        clockwatch.settle()  # a session opened just after a step must not be moved by it a second time
        now = self.clock()
        dev, user = self.who(remote_ip)
        window = self.windows.open_for(user.name, now) if user and user.role == "vendor" else None
        decision = decide(user, now, self.config().clinic.timezone, window)
        if decision.allowed and self.creds.exists(user.name) is False:
            decision = Decision(False, "unknown")
        if decision.allowed:
            verdict = self.creds.verify(user.name, password[:256], code[:16])
            if not verdict.ok:
                decision = Decision(False, verdict.reason)
                if verdict.locked_now:
                    self.audit.record(user.name, "vpn.user.locked", {"device": dev.device}, source="vpn",
                                      remote=remote_ip)  # fmt: skip
                    self.end_user(user.name, "locked")
        actor = user.name if user else "?"
        if not decision.allowed:
            self.audit.record(
                actor, "vpn.signin.refused", {"reason": decision.reason}, source="vpn", remote=remote_ip
            )
            return decision
        assert dev is not None and user is not None
        self._replace(dev.ip4)
        with self.ctx.db.transaction() as conn:  # the row first: an admitted address always has a session
            sid = conn.execute(
                "INSERT INTO vpn_sessions(user, tunnel_ip, window_id, started, expires, remote) VALUES (?, ?, ?, ?, ?, ?)",
                (user.name, dev.ip4, window.id if window else None, now, decision.expires, remote_ip),
            ).lastrowid
        try:
            self.gate.admit(user.name, dev.ip4, max(1, math.ceil(decision.expires - now)))
        except REVOKE_ERRORS:
            # The admission may have half happened (set element added, bookkeeping failed): take it back
            # the same way as any session end, so a failure here is retried by the expiry worker too.
            self._end_where("id = ?", (sid,), "admit_failed")
            raise
        self.audit.record(
            user.name, "vpn.signin", {"device": dev.device, "ip": dev.ip4, "until": decision.expires,
                                      "window": window.id if window else None, "session": sid},
            source="vpn", remote=remote_ip,
        )  # fmt: skip
        return decision

    def _replace(self, tunnel_ip: str) -> None:
        """End (and revoke) an earlier session of the address; refuse the sign-in if that revoke failed,
        since the expiry worker's retry would otherwise revoke the new session's admission."""
        self._end_where("tunnel_ip = ?", (tunnel_ip,), "replaced")
        with self.ctx.db.connection() as conn:
            left = conn.execute(
                "SELECT COUNT(*) FROM vpn_sessions WHERE tunnel_ip = ? AND ended IS NULL", (tunnel_ip,)
            ).fetchone()[0]
        if left:
            raise ApplyError(
                "前の接続を切断できなかったため、サインインできません。しばらくしてからお試しください",
                f"the previous session of {tunnel_ip} could not be revoked; sign-in refused for now",
            )

    def logout(self, remote_ip: str) -> list[Session]:
        dev, _ = self.who(remote_ip)
        if dev is None:
            return []
        return self._end_where("tunnel_ip = ?", (dev.ip4,), "logout")

    def end_ip(self, tunnel_ip: str, reason: str) -> list[Session]:
        """End the sessions of one tunnel address (its device was revoked or re-issued)."""
        return self._end_where("tunnel_ip = ?", (tunnel_ip,), reason)

    def end_user(self, user: str, reason: str) -> list[Session]:
        return self._end_where("user = ?", (user,), reason)

    def disable_user(self, user: str, actor: str, source: str = "cli") -> list[Session]:
        """Stop a user now: no more sign-ins and every open session cut."""
        if self.creds.exists(user):
            self.creds.set_disabled(user, True)
        ended = self.end_user(user, "disabled")
        self.audit.record(
            actor, "vpn.user.disable", {"user": user, "sessions_cut": len(ended)}, source=source
        )
        return ended

    def _end_where(self, where: str, args: tuple, reason: str) -> list[Session]:
        """Revoke in the kernel, then mark ended: only the sessions whose revoke worked are returned.

        The intent is written first (`revoke_pending`, first reason wins), so a revoke that fails, or a
        process that dies half way, leaves a record the expiry worker retries (`retry_pending`)."""
        with self.ctx.db.transaction() as conn:
            rows = [
                _row(r)
                for r in conn.execute(f"SELECT * FROM vpn_sessions WHERE ended IS NULL AND {where}", args)
            ]
            conn.executemany(
                "UPDATE vpn_sessions SET revoke_pending = ? WHERE id = ? AND revoke_pending = ''",
                [(reason, s.id) for s in rows],
            )
        done = [self._revoke(s, s.revoke_pending or reason) for s in rows]
        return [s for s in done if s is not None]

    def _revoke(self, s: Session, reason: str) -> Session | None:
        """One session: kernel first; on failure it stays open and pending (each session on its own)."""
        try:
            self.gate.revoke(s.user, s.tunnel_ip)
        except REVOKE_ERRORS as exc:
            detail = exc.text("en") if isinstance(exc, MamoriError) else f"{type(exc).__name__}: {exc}"
            if s.revoke_pending:  # a retry (every expiry tick): logged, not audited again
                log.warning("vpn session %d (%s) still not revoked: %s", s.id, s.tunnel_ip, detail)
                return None
            log.error("vpn session %d (%s) could not be revoked, will retry: %s", s.id, s.tunnel_ip, detail)
            self.audit.record(s.user, "vpn.session.revoke_failed", {"session": s.id, "reason": reason,
                              "ip": s.tunnel_ip, "error": detail[:300]}, source="vpn")  # fmt: skip
            return None
        now = self.clock()
        with self.ctx.db.transaction() as conn:
            conn.execute(
                "UPDATE vpn_sessions SET ended = ?, end_reason = ?, revoke_pending = '' WHERE id = ? AND ended IS NULL",
                (now, reason, s.id),
            )
        self.audit.record(s.user, "vpn.session.end", {"session": s.id, "reason": reason, "ip": s.tunnel_ip},
                          source="vpn")  # fmt: skip
        return replace(s, ended=now, end_reason=reason, revoke_pending="")

    def retry_pending(self) -> list[Session]:
        """Retry the revokes that failed before (run by the expiry worker every tick)."""
        return self._end_where("revoke_pending != ''", (), "")

    def pending(self) -> list[Session]:
        with self.ctx.db.connection() as conn:
            rows = conn.execute("SELECT * FROM vpn_sessions WHERE ended IS NULL AND revoke_pending != ''")
            return [_row(r) for r in rows]

    def expire_due(self) -> list[Session]:
        """End sessions past their time, of users no longer enabled, and of maintenance windows that closed."""
        now = self.clock()
        ended: list[Session] = self.retry_pending()
        for window in self.windows.due_to_close(now):  # first, so a vendor's session ends as "window_end"
            ended += self._end_where("window_id = ?", (window.id,), "window_end")
            self.windows.mark_closed(window.id)
            self.audit.record(
                "mamori", "vpn.window.closed", {"window": window.id, "user": window.user}, source="vpn"
            )
        ended += self._end_where("expires <= ?", (now,), "expired")
        enabled = {u.name for u in self.config().vpn.users if u.enabled}
        with self.ctx.db.connection() as conn:
            users = {r[0] for r in conn.execute("SELECT DISTINCT user FROM vpn_sessions WHERE ended IS NULL")}
        for user in sorted(users - enabled):
            ended += self.end_user(user, "disabled")
        return ended

    def list(self, user: str | None = None, limit: int = 100) -> list[Session]:
        sql, args = "SELECT * FROM vpn_sessions", ()
        if user is not None:
            sql, args = sql + " WHERE user = ?", (user,)
        with self.ctx.db.connection() as conn:
            return [_row(r) for r in conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))]
