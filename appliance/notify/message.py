"""The Japanese text of a notification: one incident, several folded into one message, the daily digest.

Pure functions of their arguments; times are shown in the clinic's zone (appliance.clock.show).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from appliance.clock import show
from ids.incidents import Incident

MAX_IN_ONE = 20  # incidents written out in one message; the rest are counted
MAX_IN_DIGEST = 50


def new_id() -> str:
    """A message's stable id: a UUID, so that it also serves as LINE's X-Line-Retry-Key."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Message:
    """One message. `id` stays the same on every channel and every retry: the receiver de-duplicates on it."""

    subject: str
    body: str
    severity: int  # 1 high .. 3 low, for syslog
    id: str = field(default_factory=new_id)
    kind: str = "notice"  # incidents / digest / vpn / test / notice


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail (the monthly report's PDF)."""

    filename: str
    data: bytes
    mime: str = "application/pdf"


def incident_text(clinic: str, inc: Incident, tz: str | None = None) -> str:
    ex = inc.explanation
    when = show(inc.last_seen, tz, "%m/%d %H:%M")
    return (f"【重要度 {ex.importance}】{ex.title}\n{inc.src_ip} → {inc.dest_ip}（{inc.count}回、最終 {when}）\n"
            f"{ex.meaning}\n対応: {ex.action}\n(#{inc.id} / {clinic})")  # fmt: skip


def compose(clinic: str, incidents: list[Incident], tz: str | None = None) -> Message:
    top = min(incidents, key=lambda i: i.severity)
    subject = f"[Mamori {clinic}] {top.explanation.title}"
    if len(incidents) > 1:
        subject += f" ほか{len(incidents) - 1}件"
    body = "\n\n".join(incident_text(clinic, i, tz) for i in incidents[:MAX_IN_ONE])
    if len(incidents) > MAX_IN_ONE:
        body += f"\n\n…ほか {len(incidents) - MAX_IN_ONE} 件（mamori ids incidents で確認できます）"
    return Message(subject, body, top.severity, kind="incidents")


def digest(clinic: str, incidents: list[Incident]) -> Message:
    counts = {imp: sum(1 for i in incidents if i.explanation.importance == imp) for imp in "高中低"}
    head = f"過去24時間のまとめ: 重要度 高 {counts['高']}件 / 中 {counts['中']}件 / 低 {counts['低']}件"
    lines = [f"- [{i.state}] 重要度{i.explanation.importance} {i.explanation.title}（{i.src_ip}, {i.count}回）"
             for i in incidents[:MAX_IN_DIGEST]]  # fmt: skip
    body = head + ("\n" + "\n".join(lines) if lines else "\n異常はありませんでした。")
    return Message(f"[Mamori {clinic}] 日次まとめ", body, 3, kind="digest")
