"""The audit log: every change and every login/admin action — who, when, from where, what.

MHLW guideline 6.0 asks that logs be protected against deletion and tampering. Each entry carries an
HMAC over its content and the previous entry's MAC, keyed with a secret kept in the keys directory (0600),
so that editing, deleting or re-ordering a past entry breaks the chain, and recomputing the chain needs
the key, not just write access to the database. The number of entries and the last MAC are also kept in
the kv table, so that cutting entries off the end is detected too.
Pruning (`prune`, storage.audit_days, five years by default) cuts entries off the *start* only: it
records an `audit.pruned` entry, deletes the entries before the cut and keeps an anchor in kv — the id and
MAC of the last entry deleted, itself MAC'd — from which `verify` starts the chain. Deleting more
entries, forging the anchor or cutting the end still breaks verification.
Non-goal: protection against someone who has the key (root on the box); ship logs off the box for that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.clock import wall
from appliance.errors import StateError
from appliance.fileio import create_once
from appliance.storage import Database

if TYPE_CHECKING:
    from appliance.subsystem import Context

GENESIS = "0" * 64
ANCHOR_KEY = "audit_anchor"
KEY_BYTES = 32


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    source: str
    remote: str
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason_ja: str = ""
    reason_en: str = ""

    def text(self, lang: str = "ja") -> str:
        if self.ok:
            if lang == "en":
                return f"audit log intact ({self.checked} entries verified)"
            return f"監査ログは改ざんされていません（{self.checked}件を確認）"
        return self.reason_en if lang == "en" else self.reason_ja


def _canonical(
    entry_id: int, ts: float, actor: str, source: str, remote: str, action: str, detail: str
) -> bytes:
    return json.dumps(
        [entry_id, repr(ts), actor, source, remote, action, detail], ensure_ascii=False
    ).encode()


class AuditLog:
    def __init__(self, db: Database, key_path: Path | None = None) -> None:
        self.db = db
        self.key_path = key_path or db.state_dir / "keys" / "audit.key"

    def _key(self) -> bytes:
        try:
            key = self.key_path.read_bytes()
        except FileNotFoundError:
            key = self._create_key()
        if len(key) != KEY_BYTES:
            raise StateError(
                f"監査ログの鍵 {self.key_path} が壊れています", f"the audit key {self.key_path} is damaged"
            )
        return key

    def _create_key(self) -> bytes:
        """Made once and never replaced (appliance.fileio.create_once): a racing process either wins or reads
        the complete key of the winner, never an empty or partial file."""
        create_once(self.key_path, secrets.token_bytes(KEY_BYTES), mode=0o640)  # the web UI's group reads it
        return self.key_path.read_bytes()

    def _head(self, key: bytes, count: int, last: str) -> str:
        """The chain's length and last MAC, themselves MAC'd: cutting entries off the end and rewriting
        the head to match needs the key."""
        return f"{count}:{last}:{self._mac(key, 'head', f'{count}:{last}'.encode())}"

    def _mac(self, key: bytes, prev: str, content: bytes) -> str:
        return hmac.new(key, prev.encode() + content, hashlib.sha256).hexdigest()

    def record(
        self,
        actor: str,
        action: str,
        detail: dict[str, Any] | None = None,
        source: str = "cli",
        remote: str = "",
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Append one entry. Pass `conn` to make the entry part of a caller's transaction."""
        key = self._key()
        detail_text = json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, default=str)
        if conn is not None:
            return self._append(conn, key, actor, action, detail_text, source, remote)
        with self.db.transaction() as c:
            return self._append(c, key, actor, action, detail_text, source, remote)

    def _append(
        self,
        conn: sqlite3.Connection,
        key: bytes,
        actor: str,
        action: str,
        detail: str,
        source: str,
        remote: str,
    ) -> int:
        row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = row["hash"] if row else GENESIS
        entry_id = (row["id"] + 1) if row else 1
        ts = wall()
        mac = self._mac(key, prev, _canonical(entry_id, ts, actor, source, remote, action, detail))
        conn.execute(
            "INSERT INTO audit(id, ts, actor, source, remote, action, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, ts, actor, source, remote, action, detail, prev, mac),
        )
        conn.execute(
            "INSERT OR REPLACE INTO kv(key, value) VALUES ('audit_head', ?)",
            (self._head(key, entry_id, mac),),
        )
        return entry_id

    def _anchor(self, key: bytes, entry_id: int, mac: str) -> str:
        return f"{entry_id}:{mac}:{self._mac(key, 'anchor', f'{entry_id}:{mac}'.encode())}"

    def _start(self, key: bytes, conn: sqlite3.Connection) -> tuple[int, str] | None:
        """Where the chain starts: (first id, the MAC before it); None if the anchor was tampered with."""
        row = conn.execute("SELECT value FROM kv WHERE key = ?", (ANCHOR_KEY,)).fetchone()
        if row is None:
            return 1, GENESIS
        try:
            entry_id, mac, _ = row[0].split(":")
            if not hmac.compare_digest(self._anchor(key, int(entry_id), mac), row[0]):
                return None
        except ValueError:
            return None
        return int(entry_id) + 1, mac

    def prune(self, before: float, actor: str = "mamori") -> int:
        """Delete the entries at the start of the log older than `before` (up to the first entry that is
        not: a clock stepped back never makes a newer entry go). Returns how many went."""
        key = self._key()
        with self.db.transaction() as conn:
            first_kept = conn.execute("SELECT MIN(id) FROM audit WHERE ts >= ?", (before,)).fetchone()[0]
            last = conn.execute(
                "SELECT id, hash FROM audit WHERE id < ? ORDER BY id DESC LIMIT 1",
                (first_kept if first_kept is not None else 2**62,),
            ).fetchone()
            if last is None:
                return 0
            count = conn.execute("SELECT count(*) FROM audit WHERE id <= ?", (last["id"],)).fetchone()[0]
            detail = {"up_to": last["id"], "entries": count, "before": before, "anchor_mac": last["hash"]}
            self._append(conn, key, actor, "audit.pruned",
                         json.dumps(detail, ensure_ascii=False, sort_keys=True), "retention", "")  # fmt: skip
            conn.execute("DELETE FROM audit WHERE id <= ?", (last["id"],))
            conn.execute(
                "INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)",
                (ANCHOR_KEY, self._anchor(key, last["id"], last["hash"])),
            )
        return count

    def verify(self) -> VerifyResult:
        """Walk the chain from the first entry (or the anchor left by pruning); report where it breaks."""
        key = self._key()
        with self.db.connection() as conn:
            start = self._start(key, conn)
            if start is None:
                return self._broken(0, 1, "anchor")
            (expected_id, prev), checked = start, 0
            for row in conn.execute("SELECT * FROM audit ORDER BY id"):
                if row["id"] != expected_id or row["prev_hash"] != prev:
                    return self._broken(checked, expected_id, "missing")
                content = _canonical(
                    row["id"],
                    row["ts"],
                    row["actor"],
                    row["source"],
                    row["remote"],
                    row["action"],
                    row["detail"],
                )
                if not hmac.compare_digest(self._mac(key, prev, content), row["hash"]):
                    return self._broken(checked, row["id"], "modified")
                prev, expected_id, checked = row["hash"], expected_id + 1, checked + 1
            head = conn.execute("SELECT value FROM kv WHERE key = 'audit_head'").fetchone()
            # An empty log with revisions recorded means the entries were deleted wholesale.
            revisions = conn.execute("SELECT count(*) FROM revisions").fetchone()[0]
        expected_head = self._head(key, expected_id - 1, prev)
        if (head is None and (checked or revisions)) or (head is not None and head[0] != expected_head):
            return self._broken(checked, expected_id, "truncated")
        return VerifyResult(ok=True, checked=checked)

    @staticmethod
    def _broken(checked: int, at: int, kind: str) -> VerifyResult:
        ja = {
            "missing": f"監査ログの {at} 番目の記録が削除または入れ替えられています",
            "modified": f"監査ログの {at} 番目の記録が書き換えられています",
            "truncated": f"監査ログの末尾（{at} 番目以降）が削除されています",
            "anchor": "監査ログの古い記録を整理した位置の記録が書き換えられています",
        }[kind]
        en = {
            "missing": f"audit entry {at} was deleted or re-ordered",
            "modified": f"audit entry {at} was modified",
            "truncated": f"audit entries from {at} on were cut off",
            "anchor": "the anchor left by pruning the audit log was modified",
        }[kind]
        return VerifyResult(ok=False, checked=checked, broken_at=at, reason_ja=ja, reason_en=en)

    def search(
        self, text: str | None = None, actor: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[AuditEntry]:
        """Newest first. `text` matches the action or the detail, as a plain substring."""
        sql, args = "SELECT * FROM audit WHERE 1=1", []
        if text:
            sql += " AND (instr(action, ?) > 0 OR instr(detail, ?) > 0)"
            args += [text, text]
        if actor:
            sql += " AND actor = ?"
            args.append(actor)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        args += [limit, offset]
        with self.db.connection() as conn:
            return [_entry(r) for r in conn.execute(sql, args)]


def _entry(r: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        r["id"], r["ts"], r["actor"], r["source"], r["remote"], r["action"], json.loads(r["detail"])
    )


def entries_after(
    db: Database, after_id: int, actions: tuple[str, ...] = (), limit: int = 100
) -> list[AuditEntry]:
    """Entries with id > `after_id` (of `actions` only, when given), oldest first: how an area follows the
    log from its own cursor (vpn.notices) without naming the table."""
    sql, args = "SELECT * FROM audit WHERE id > ?", [after_id]
    if actions:
        sql += f" AND action IN ({','.join('?' * len(actions))})"
        args += actions
    with db.connection() as conn:
        return [_entry(r) for r in conn.execute(sql + " ORDER BY id LIMIT ?", (*args, limit))]


def newest_id(db: Database) -> int:
    """The newest entry's id (0 for an empty log): where a new cursor starts when history is not news."""
    with db.connection() as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0])


__all__ = ["AuditEntry", "AuditLog", "VerifyResult", "entries_after", "newest_id"]


def audit_log(ctx: Context) -> AuditLog:
    """The box's audit log with its key in the state directory's keys/: the one way an area opens it (it was
    built by hand in nineteen places)."""
    return AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key")
