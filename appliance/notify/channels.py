"""How a message leaves the box: e-mail (SMTP + STARTTLS), a JSON webhook, LINE (Messaging API push) and
syslog (RFC 5424) for a SIEM.

A channel sends one message or raises; it does not retry or remember anything (the caller does).
Secrets are not in the config: the SMTP password and the LINE channel access token are files in the keys
directory (smtp_password, line_token).
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from appliance.clock import Clock, wall
from appliance.config.model import MamoriConfig, NotificationsConfig
from appliance.errors import MamoriError
from appliance.notify.message import Attachment, Message


class NotifyError(MamoriError):
    code = "notify"


class Channel(Protocol):
    name: str

    def send(self, msg: Message) -> None: ...


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
        domain = self.cfg.sender.rpartition("@")[2] or "mamori.invalid"
        email["Message-ID"] = f"<{msg.id}@{domain}>"  # the same on every retry: mail clients show it once
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
        body = {"id": msg.id, "source": "mamori", "kind": msg.kind, "subject": msg.subject, "text": msg.body,
                "severity": msg.severity}  # fmt: skip
        _post_json(self.cfg.url, body, {"Idempotency-Key": msg.id}, self.timeout)


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
                   {"Authorization": f"Bearer {self.token}", "X-Line-Retry-Key": msg.id},
                   self.timeout)  # fmt: skip


def rfc5424(msg: Message, hostname: str, now: float, app: str = "mamori") -> bytes:
    """One RFC 5424 message: facility local0, severity from the incident, UTF-8 with BOM as the RFC says.
    MSGID is the message's id without dashes (32 characters, the RFC's limit); the structured data carries
    it as sent, with the kind and severity."""
    sev = {1: 2, 2: 4}.get(msg.severity, 5)  # critical / warning / notice
    pri = 16 * 8 + sev
    ts = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    msgid = "".join(c for c in msg.id if c.isascii() and c.isalnum())[:32] or "-"
    sd = f'[mamori@32473 id="{_sd_value(msg.id)}" kind="{_sd_value(msg.kind)}" severity="{msg.severity}"]'
    text = (msg.subject + " | " + msg.body).replace("\n", " ")
    return (
        f"<{pri}>1 {ts} {hostname[:255] or '-'} {app} - {msgid} {sd} ".encode()
        + b"\xef\xbb\xbf"
        + text.encode()
    )


def _sd_value(value: str) -> str:
    """RFC 5424 §6.3.3: '"', '\\' and ']' are escaped inside a PARAM-VALUE."""
    return "".join("\\" + c if c in '"\\]' else c for c in value)


class SyslogChannel:
    name = "syslog"

    def __init__(self, cfg, timeout: float = 5, clock: Clock = wall) -> None:
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


SEND_ERRORS = (OSError, smtplib.SMTPException, MamoriError, ValueError)
"""What a channel's send may raise when the far end or the network fails (a bug raises something else)."""
