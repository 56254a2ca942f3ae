"""What the clinic is told about incidents: the Japanese text of one incident, of several folded into one
message and of the daily digest, and the IDS's side of the notification folding (appliance.notify.folding).

The folding — which incidents are news, at most one message per min_interval, the digest once a day — is
shared machinery of the ground floor, which never imports an area: ids.daemon hands it `NEWS`, and the folding
asks it for new incidents and for the message text. Times are shown in the clinic's zone
(appliance.clock.show); the text functions are pure.
"""

from __future__ import annotations

import logging

from appliance.clock import show
from appliance.errors import NotFoundError
from appliance.notify.message import Message
from appliance.storage import Database
from ids import incidents, queries
from ids.incidents import Incident

log = logging.getLogger(__name__)

MAX_IN_ONE = 20  # incidents written out in one message; the rest are counted
MAX_IN_DIGEST = 50
DIGEST_SPAN = 86400.0


def incident_text(clinic: str, inc: Incident, tz: str | None = None) -> str:
    ex = inc.explanation
    when = show(inc.last_seen, tz, "%m/%d %H:%M")
    return (f"【重要度 {ex.importance}】{ex.title}\n{inc.src_ip} → {inc.dest_ip}（{inc.count}回、最終 {when}）\n"
            f"{ex.meaning}\n対応: {ex.action}\n(#{inc.id} / {clinic})")  # fmt: skip


def compose(clinic: str, found: list[Incident], tz: str | None = None) -> Message:
    top = min(found, key=lambda i: i.severity)
    subject = f"[Mamori {clinic}] {top.explanation.title}"
    if len(found) > 1:
        subject += f" ほか{len(found) - 1}件"
    body = "\n\n".join(incident_text(clinic, i, tz) for i in found[:MAX_IN_ONE])
    if len(found) > MAX_IN_ONE:
        body += f"\n\n…ほか {len(found) - MAX_IN_ONE} 件（mamori ids incidents で確認できます）"
    return Message(subject, body, top.severity, kind="incidents")


def digest(clinic: str, found: list[Incident]) -> Message:
    counts = {imp: sum(1 for i in found if i.explanation.importance == imp) for imp in "高中低"}
    head = f"過去24時間のまとめ: 重要度 高 {counts['高']}件 / 中 {counts['中']}件 / 低 {counts['低']}件"
    lines = [f"- [{i.state}] 重要度{i.explanation.importance} {i.explanation.title}（{i.src_ip}, {i.count}回）"
             for i in found[:MAX_IN_DIGEST]]  # fmt: skip
    body = head + ("\n" + "\n".join(lines) if lines else "\n異常はありませんでした。")
    return Message(f"[Mamori {clinic}] 日次まとめ", body, 3, kind="digest")


class IncidentNews:
    """The IDS's answers to the folding's questions (appliance.notify.folding.News)."""

    def severities(
        self, db: Database, after_id: int | None, since: float, limit: int
    ) -> tuple[list[tuple[int, int]], int]:
        return queries.incident_severities(db, after_id=after_id, since=since, limit=limit)

    def message(self, db: Database, ids: list[int], clinic: str, tz: str) -> Message | None:
        """One message for the incidents still there, most severe and newest first; None when none is."""
        found = []
        for i in ids:
            try:
                found.append(incidents.get(db, i))
            except NotFoundError:  # removed by retention meanwhile: nothing to say about it
                log.info("pending incident %d no longer exists", i)
        if not found:
            return None
        return compose(clinic, sorted(found, key=lambda i: (i.severity, -i.last_seen)), tz)

    def digest(self, db: Database, now: float, clinic: str) -> Message:
        recent = [i for i in incidents.list_incidents(db, limit=1000) if i.last_seen >= now - DIGEST_SPAN]
        return digest(clinic, recent)


NEWS = IncidentNews()
