"""Notifications: telling the clinic (e-mail, webhook, LINE, syslog) what the box saw.

Modules, one job each:
- `message`: a message as every channel sends it (the text is the announcing area's: ids.announce, vpn.notices).
- `channels`: how a message leaves the box (SMTP + STARTTLS, JSON webhook, LINE Messaging API, RFC 5424 syslog).
- `folding`: which incidents are announced and when (`notifications.min_interval`, the digest), kept in
  the state database; the incidents and their text come from the IDS (ids.announce), handed in by ids.daemon.
- `outbox`: every message written before it is sent, retried with back-off until delivered or expired;
  which channel is in trouble (dashboard, `mamori ids status`).
- `worker`: the daemon's workers (the folding, one sender per channel).
- `schema`: the tables (notify_pending, notify_outbox).

Areas import the names they need from here (`from appliance.notify import Message, channels`).
"""

from appliance.notify.channels import (
    Channel,
    EmailChannel,
    LineChannel,
    NotifyError,
    SyslogChannel,
    WebhookChannel,
    channels,
    rfc5424,
    smtp_password,
)
from appliance.notify.message import Attachment, Message

__all__ = [
    "Attachment",
    "Channel",
    "EmailChannel",
    "LineChannel",
    "Message",
    "NotifyError",
    "SyslogChannel",
    "WebhookChannel",
    "channels",
    "rfc5424",
    "smtp_password",
]
