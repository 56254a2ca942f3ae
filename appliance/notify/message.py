"""A notification as every channel sends it: subject, body, severity and a stable id; and an attachment.

The text of what an area announces is the area's (ids.announce for incidents, vpn.notices for the VPN).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


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
