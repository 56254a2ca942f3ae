"""How a message leaves the box: e-mail (SMTP + STARTTLS), a JSON webhook, LINE (Messaging API push) and
syslog (RFC 5424) for a SIEM.

A channel sends one message or raises; it does not retry or remember anything (the caller does).
Secrets are not in the config: the SMTP password and the LINE channel access token are files in the keys
directory (smtp_password, line_token).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from appliance.clock import Clock, wall
from appliance.config.model import LINE_API, MamoriConfig, NotificationsConfig
from appliance.config.types import non_public
from appliance.errors import MamoriError
from appliance.notify import signing
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
    _post(url, json.dumps(payload, ensure_ascii=False).encode("utf-8"), headers, timeout)


def _post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> None:
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8", **headers})  # fmt: skip
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if resp.status >= 300:
            raise NotifyError(f"送信先が {resp.status} を返しました", f"the endpoint answered {resp.status}")


def resolve_target(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to, checked at send time: a public name that DNS points into the LAN (or at
    the box) is refused unless the clinic allowed private targets. The connection then goes to exactly
    this address (no second lookup a rebinding DNS could answer differently)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addrs = [str(info[4][0]) for info in infos]
    inside = [a for a in addrs if non_public(ipaddress.ip_address(a.split("%")[0]))]
    if inside and not allow_private:
        raise NotifyError(
            f"送信先（{host}）が院内・この機器自身のアドレス（{inside[0]}）を指しているため、送りませんでした",
            f"{host} resolves to a private address ({inside[0]}); not sent (allow_private is off)",
        )
    return addrs[0]


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a given address, with the certificate checked against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class WebhookChannel:
    """A JSON POST over HTTPS, signed with the box's webhook key (appliance.notify.signing) when
    `keys_dir` is given (always, from `channels()`). Redirects are not followed (a 3xx is a failure):
    a redirect could otherwise lead into the LAN."""

    name = "webhook"

    def __init__(
        self, cfg, timeout: float = 10, keys_dir: Path | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.cfg, self.timeout, self.keys_dir, self.tls = cfg, timeout, keys_dir, tls

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        url = urlsplit(self.cfg.url)
        if url.scheme != "https" or not url.hostname:  # the config model refuses it too
            raise NotifyError("Webhook の URL は https:// で始めてください", "the webhook URL must be https")
        port = url.port or 443
        address = resolve_target(url.hostname, port, self.cfg.allow_private)
        conn = _PinnedHTTPS(
            url.hostname, port, address, self.tls or ssl.create_default_context(), self.timeout
        )
        try:
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            conn.request("POST", path, body, {"Content-Type": "application/json; charset=utf-8", **headers})
            resp = conn.getresponse()
            resp.read(65536)
        finally:
            conn.close()
        if resp.status >= 300:
            raise NotifyError(f"送信先が {resp.status} を返しました", f"the endpoint answered {resp.status}")

    def send(self, msg: Message) -> None:
        body = json.dumps({"id": msg.id, "source": "mamori", "kind": msg.kind, "subject": msg.subject,
                           "text": msg.body, "severity": msg.severity}, ensure_ascii=False).encode()  # fmt: skip
        headers = {"Idempotency-Key": msg.id}
        if self.keys_dir is not None:
            headers[signing.HEADER] = signing.signature(signing.webhook_key(self.keys_dir), body)
        self._post(body, headers)


class LineChannel:
    """LINE Messaging API push (LINE Notify was shut down in 2025)."""

    name = "line"

    def __init__(self, cfg, token: str | None, timeout: float = 10, base: str = LINE_API) -> None:
        self.cfg, self.token, self.timeout = cfg, token, timeout
        self.base = base  # always LINE's own host; a test points it at its own receiver

    def send(self, msg: Message) -> None:
        if not self.token:
            raise NotifyError("LINE のチャネルアクセストークンがありません（keys/line_token）",
                              "no LINE channel access token (keys/line_token)")  # fmt: skip
        text = (msg.subject + "\n" + msg.body)[:4900]  # a LINE text message holds 5,000 characters
        _post_json(self.base.rstrip("/") + "/v2/bot/message/push",
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
        out.append(WebhookChannel(n.webhook, keys_dir=keys_dir))
    if n.line:
        out.append(LineChannel(n.line, _secret(keys_dir, "line_token")))
    if n.syslog:
        out.append(SyslogChannel(n.syslog))
    return out


SEND_ERRORS = (OSError, smtplib.SMTPException, MamoriError, ValueError)
"""What a channel's send may raise when the far end or the network fails (a bug raises something else)."""
