"""Telling people about incidents: e-mail (SMTP + STARTTLS), a JSON webhook, LINE (Messaging API push),
and syslog (RFC 5424) for a SIEM. Japanese text, rate-limited, with a daily digest.

Policy: a new incident of 重要度 高 or 中 is announced; at most one message per `notifications.min_interval`
(what arrives meanwhile is folded into the next message, never dropped); 低 only appears in the digest.
The digest (once a day, if `daily_digest`) lists the last 24 hours. Secrets are not in the config: the SMTP
password and the LINE channel access token are files in the keys directory (smtp_password, line_token).
Non-goal: retries with persistence across restarts; a failed send is logged and counted, and the next
message includes what was pending.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from appliance.config.model import MamoriConfig, NotificationsConfig
from appliance.config.types import parse_duration
from appliance.errors import MamoriError
from ids.incidents import Incident

log = logging.getLogger(__name__)


class NotifyError(MamoriError):
    code = "ids.notify"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    severity: int  # 1 high .. 3 low, for syslog


class Channel(Protocol):
    name: str

    def send(self, msg: Message) -> None: ...


def incident_text(clinic: str, inc: Incident) -> str:
    ex = inc.explanation
    when = time.strftime("%m/%d %H:%M", time.localtime(inc.last_seen))
    return (f"【重要度 {ex.importance}】{ex.title}\n{inc.src_ip} → {inc.dest_ip}（{inc.count}回、最終 {when}）\n"
            f"{ex.meaning}\n対応: {ex.action}\n(#{inc.id} / {clinic})")  # fmt: skip


def compose(clinic: str, incidents: list[Incident]) -> Message:
    top = min(incidents, key=lambda i: i.severity)
    subject = f"[Mamori {clinic}] {top.explanation.title}"
    if len(incidents) > 1:
        subject += f" ほか{len(incidents) - 1}件"
    body = "\n\n".join(incident_text(clinic, i) for i in incidents[:20])
    if len(incidents) > 20:
        body += f"\n\n…ほか {len(incidents) - 20} 件（mamori ids incidents で確認できます）"
    return Message(subject, body, top.severity)


def digest(clinic: str, incidents: list[Incident]) -> Message:
    counts = {imp: sum(1 for i in incidents if i.explanation.importance == imp) for imp in "高中低"}
    head = f"過去24時間のまとめ: 重要度 高 {counts['高']}件 / 中 {counts['中']}件 / 低 {counts['低']}件"
    lines = [f"- [{i.state}] 重要度{i.explanation.importance} {i.explanation.title}（{i.src_ip}, {i.count}回）"
             for i in incidents[:50]]  # fmt: skip
    body = head + ("\n" + "\n".join(lines) if lines else "\n異常はありませんでした。")
    return Message(f"[Mamori {clinic}] 日次まとめ", body, 3)


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail (the monthly report's PDF)."""

    filename: str
    data: bytes
    mime: str = "application/pdf"


class EmailChannel:
    name = "email"

    def __init__(
        self, cfg, password: str | None, timeout: float = 20, tls: ssl.SSLContext | None = None
    ) -> None:
        self.cfg, self.password, self.timeout = cfg, password, timeout
        self.tls = tls or ssl.create_default_context()

    def send(self, msg: Message, attachments: tuple[Attachment, ...] = ()) -> None:
        email = EmailMessage()
        email["Subject"], email["From"], email["To"] = (
            msg.subject,
            self.cfg.sender,
            ", ".join(self.cfg.recipients),
        )
        email.set_content(msg.body, charset="utf-8")
        for att in attachments:
            maintype, _, subtype = att.mime.partition("/")
            email.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename)
        with smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.timeout) as smtp:
            if self.cfg.starttls:
                smtp.starttls(context=self.tls)  # raises if the server does not offer it: never send in clear
            if self.cfg.username and self.password:
                smtp.login(self.cfg.username, self.password)
            smtp.send_message(email)


def _post_json(url: str, payload: dict, headers: dict[str, str], timeout: float) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8", **headers})  # fmt: skip
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if resp.status >= 300:
            raise NotifyError(f"送信先が {resp.status} を返しました", f"the endpoint answered {resp.status}")


class WebhookChannel:
    name = "webhook"

    def __init__(self, cfg, timeout: float = 10) -> None:
        self.cfg, self.timeout = cfg, timeout

    def send(self, msg: Message) -> None:
        _post_json(self.cfg.url, {"source": "mamori", "subject": msg.subject, "text": msg.body,
                                  "severity": msg.severity}, {}, self.timeout)  # fmt: skip


class LineChannel:
    """LINE Messaging API push (LINE Notify was shut down in 2025)."""

    name = "line"

    def __init__(self, cfg, token: str | None, timeout: float = 10) -> None:
        self.cfg, self.token, self.timeout = cfg, token, timeout

    def send(self, msg: Message) -> None:
        if not self.token:
            raise NotifyError("LINE のチャネルアクセストークンがありません（keys/line_token）",
                              "no LINE channel access token (keys/line_token)")  # fmt: skip
        text = (msg.subject + "\n" + msg.body)[:4900]  # a LINE text message holds 5,000 characters
        _post_json(self.cfg.api_base.rstrip("/") + "/v2/bot/message/push",
                   {"to": self.cfg.to, "messages": [{"type": "text", "text": text}]},
                   {"Authorization": f"Bearer {self.token}"}, self.timeout)  # fmt: skip


def rfc5424(msg: Message, hostname: str, now: float, app: str = "mamori") -> bytes:
    """One RFC 5424 message: facility local0, severity from the incident, UTF-8 with BOM as the RFC says."""
    sev = {1: 2, 2: 4}.get(msg.severity, 5)  # critical / warning / notice
    pri = 16 * 8 + sev
    ts = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sd = f'[mamori@32473 severity="{msg.severity}"]'
    text = (msg.subject + " | " + msg.body).replace("\n", " ")
    return (
        f"<{pri}>1 {ts} {hostname[:255] or '-'} {app} - ids {sd} ".encode() + b"\xef\xbb\xbf" + text.encode()
    )


class SyslogChannel:
    name = "syslog"

    def __init__(self, cfg, timeout: float = 5, clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.timeout, self.clock = cfg, timeout, clock

    def send(self, msg: Message) -> None:
        data = rfc5424(msg, socket.gethostname(), self.clock())
        if self.cfg.protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data[:8192], (self.cfg.host, self.cfg.port))
        else:  # RFC 6587 octet counting
            with socket.create_connection((self.cfg.host, self.cfg.port), timeout=self.timeout) as s:
                s.sendall(f"{len(data)} ".encode() + data)


def _secret(keys_dir: Path, name: str) -> str | None:
    try:
        return (keys_dir / name).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def smtp_password(keys_dir: Path) -> str | None:
    """The SMTP password from the keys directory (never in the config), or None."""
    return _secret(keys_dir, "smtp_password")


def channels(cfg: MamoriConfig, keys_dir: Path) -> list[Channel]:
    n: NotificationsConfig = cfg.notifications
    out: list[Channel] = []
    if n.email:
        out.append(EmailChannel(n.email, _secret(keys_dir, "smtp_password")))
    if n.webhook:
        out.append(WebhookChannel(n.webhook))
    if n.line:
        out.append(LineChannel(n.line, _secret(keys_dir, "line_token")))
    if n.syslog:
        out.append(SyslogChannel(n.syslog))
    return out


class Notifier:
    """Decides what to send and when (rate limit, folding, digest). Pure apart from `channels`."""

    def __init__(
        self, cfg: MamoriConfig, chans: list[Channel], clock: Callable[[], float] = time.time
    ) -> None:
        self.clinic = cfg.clinic.name
        self.interval = parse_duration(cfg.notifications.min_interval)
        self.daily = cfg.notifications.daily_digest
        self.channels = chans
        self.clock = clock
        self.pending: list[Incident] = []
        self.last_sent = float("-inf")
        self.sent = 0
        self.failed = 0

    def offer(self, incidents: list[Incident]) -> None:
        """New incidents; 低 go only to the digest."""
        self.pending += [i for i in incidents if i.severity <= 2]

    def flush(self) -> Message | None:
        """Send what is pending if the interval allows; returns the message sent (or None)."""
        if not self.pending or self.clock() - self.last_sent < self.interval:
            return None
        msg = compose(self.clinic, sorted(self.pending, key=lambda i: (i.severity, -i.last_seen)))
        self.pending = []
        self.last_sent = self.clock()
        self._send(msg)
        return msg

    def send_digest(self, incidents: list[Incident]) -> Message | None:
        if not self.daily:
            return None
        msg = digest(self.clinic, incidents)
        self._send(msg)
        return msg

    def _send(self, msg: Message) -> None:
        for ch in self.channels:
            try:
                ch.send(msg)
                self.sent += 1
            except (OSError, smtplib.SMTPException, MamoriError, ValueError) as exc:
                self.failed += 1
                log.error("notification via %s failed: %s", ch.name, exc)
