"""Notification channels against real local receivers on loopback: an SMTP server that requires STARTTLS,
an HTTP server standing in for the webhook and the LINE Messaging API, and syslog over UDP and TCP."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.config.load import parse_config
from appliance.notify import EmailChannel, LineChannel, Message, SyslogChannel, WebhookChannel, rfc5424
from ids.incidents import Incident
from tests.timetravel import validity_window

REPO = Path(__file__).resolve().parents[2]
# Channel timeouts here: bounds, not expectations (the receivers are threads of this process, and CI runs these
# tests at nice 19 beside the integration tests). A receiver that is down refuses at once.
HTTP_S = 60


def cfg_with(notifications: dict):
    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text())
    data["notifications"] = notifications
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


def webhook_cfg(url: str) -> dict:
    """The webhook section for a test receiver on loopback: private targets allowed explicitly."""
    return {"url": url, "allow_private": True}


def incident(i: int, sid: int = 1990001, severity: int = 1, last_seen: float = 1_800_000_000.0) -> Incident:
    return Incident(i, sid, "198.51.100.66", "203.0.113.2", last_seen - 60, last_seen, 3, severity,
                    "MAMORI RDP connection attempt from the internet", "Attempted Administrator Privilege Gain",
                    "未対応", "")  # fmt: skip


# -- SMTP with STARTTLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pair(cert_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_dir / "c.pem", cert_dir / "k.pem")
    return server, ssl.create_default_context(cafile=str(cert_dir / "c.pem"))


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory) -> Path:
    """A self-signed certificate for 127.0.0.1 (c.pem, k.pem), valid at the shifted and the real time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    not_before, not_after = validity_window()  # OpenSSL checks it against the real clock
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    d = tmp_path_factory.mktemp("tls")
    (d / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))  # fmt: skip
    return d


class SmtpReceiver(threading.Thread):
    """A minimal SMTP server: offers STARTTLS, refuses MAIL before TLS, accepts AUTH PLAIN, keeps messages."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(daemon=True)
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self.auth: list[str] = []
        self.tls_used = False

    def run(self) -> None:
        # Bounds, not expectations: the client may first render a report (PDF) on a loaded 2-core machine,
        # and a receiver that gave up after 10 s failed test_reports_mail with nothing wrong in the product.
        self.sock.settimeout(120)
        conn, _ = self.sock.accept()
        conn.settimeout(60)
        f = conn.makefile("rb")
        conn.sendall(b"220 test ESMTP\r\n")
        for _ in range(50):
            line = f.readline().strip()
            verb = line.split(b" ")[0].upper()
            if verb == b"EHLO":
                conn.sendall(
                    b"250-test\r\n250 AUTH PLAIN\r\n" if self.tls_used else b"250-test\r\n250 STARTTLS\r\n"
                )
            elif verb == b"STARTTLS":
                conn.sendall(b"220 go ahead\r\n")
                conn = self.tls.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                self.tls_used = True
            elif verb == b"AUTH":
                self.auth.append(base64.b64decode(line.split(b" ")[2]).decode())
                conn.sendall(b"235 ok\r\n")
            elif verb == b"MAIL":
                conn.sendall(b"250 ok\r\n" if self.tls_used else b"530 STARTTLS first\r\n")
            elif verb == b"RCPT":
                conn.sendall(b"250 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += f.readline()
                self.messages.append(data)
                conn.sendall(b"250 queued\r\n")
            elif verb == b"QUIT" or not line:
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()
        self.sock.close()


def test_email_uses_starttls_and_sends_japanese(tls_pair) -> None:
    server_tls, client_tls = tls_pair
    rx = SmtpReceiver(server_tls)
    rx.start()
    cfg = cfg_with({"email": {"host": "127.0.0.1", "port": rx.port, "username": "mamori", "sender": "box@clinic.example",
                              "recipients": ["doctor@clinic.example"]}}).notifications.email  # fmt: skip
    msg = Message("[Mamori] 攻撃を遮断しました", "本文：重要度 高", 1)
    EmailChannel(cfg, "s3cret", timeout=HTTP_S, tls=client_tls).send(msg)
    rx.join(10)
    assert rx.tls_used and rx.auth == ["\0mamori\0s3cret"]
    assert len(rx.messages) == 1
    from email import message_from_bytes, policy

    mail = message_from_bytes(rx.messages[0][:-5], policy=policy.default)
    assert mail["Subject"] == "[Mamori] 攻撃を遮断しました" and "重要度 高" in mail.get_content()
    assert mail["Message-ID"] == f"<{msg.id}@clinic.example>"  # the same on a retry: shown once


def test_email_refuses_a_server_without_starttls(tls_pair) -> None:
    _, client_tls = tls_pair
    srv = socket.create_server(("127.0.0.1", 0))

    def plain() -> None:
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 plain\r\n")
        f.readline()
        conn.sendall(b"250 plain-only\r\n")
        f.readline()
        conn.close()

    t = threading.Thread(target=plain, daemon=True)
    t.start()
    cfg = cfg_with({"email": {"host": "127.0.0.1", "port": srv.getsockname()[1], "sender": "a@b.example",
                              "recipients": ["c@d.example"]}}).notifications.email  # fmt: skip
    import smtplib

    with pytest.raises(smtplib.SMTPNotSupportedError):
        EmailChannel(cfg, None, timeout=HTTP_S, tls=client_tls).send(Message("s", "b", 1))
    t.join(5)
    srv.close()


# -- HTTP: webhook and LINE -----------------------------------------------------------------------------


def trust(monkeypatch: pytest.MonkeyPatch, cert_dir: Path) -> None:
    """Make OpenSSL's default trust store this test's certificate, as the daemon's would be on a box whose
    receiver has a certificate from a real CA (SSL_CERT_FILE is read when a default context is made)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_dir / "c.pem"))


def https_server(handler: type[BaseHTTPRequestHandler], cert_dir: Path, port: int = 0) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_dir / "c.pem", cert_dir / "k.pem")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def http_rx(cert_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """An HTTPS receiver on loopback (the webhook and the LINE API stand-in), trusted by this process."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body),
                        "ctype": self.headers.get("Content-Type"), "headers": dict(self.headers),
                        "raw": body})  # fmt: skip
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            return

    trust(monkeypatch, cert_dir)
    srv = https_server(Handler, cert_dir)
    try:
        yield f"https://127.0.0.1:{srv.server_address[1]}", got
    finally:
        srv.shutdown()
        srv.server_close()


def test_webhook_posts_json(http_rx) -> None:
    base, got = http_rx
    cfg = cfg_with({"webhook": webhook_cfg(base + "/hook")}).notifications.webhook
    msg = Message("件名", "本文", 2, kind="incidents")
    WebhookChannel(cfg, timeout=HTTP_S).send(msg)
    WebhookChannel(cfg, timeout=HTTP_S).send(
        msg
    )  # a retry: the same id again, for the receiver to de-duplicate
    assert [(g["path"], g["auth"], g["ctype"]) for g in got] == [
        ("/hook", None, "application/json; charset=utf-8")
    ] * 2
    assert got[0]["body"] == {"id": msg.id, "source": "mamori", "kind": "incidents", "subject": "件名",
                              "text": "本文", "severity": 2}  # fmt: skip
    assert got[0]["headers"]["Idempotency-Key"] == got[1]["headers"]["Idempotency-Key"] == msg.id


def test_line_push_message(http_rx) -> None:
    base, got = http_rx
    cfg = cfg_with({"line": {"to": "Cgroup123"}}).notifications.line
    msg = Message("件名", "本文" * 3000, 1)
    LineChannel(cfg, "tok-abc", timeout=HTTP_S, base=base).send(msg)
    assert got[0]["path"] == "/v2/bot/message/push" and got[0]["auth"] == "Bearer tok-abc"
    assert got[0]["headers"]["X-Line-Retry-Key"] == msg.id  # LINE's own de-duplication of retried pushes
    body = got[0]["body"]
    assert body["to"] == "Cgroup123" and body["messages"][0]["type"] == "text"
    assert len(body["messages"][0]["text"]) <= 5000 and body["messages"][0]["text"].startswith("件名\n")


# -- syslog ---------------------------------------------------------------------------------------------


def test_syslog_rfc5424_udp_and_tcp() -> None:
    msg = Message("[Mamori] 件名", "一行目\n二行目", 1, id="0b6f3c1e-5d2a-4c1b-9f3e-2a7d8c9e0f11", kind="vpn")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    cfg = cfg_with({"syslog": {"host": "127.0.0.1", "port": udp.getsockname()[1]}}).notifications.syslog
    SyslogChannel(cfg, clock=lambda: 1_800_000_000.5).send(msg)
    data, _ = udp.recvfrom(9000)
    udp.close()
    head, _, text = data.partition(b"\xef\xbb\xbf")
    assert head.startswith(b"<130>1 2027-01-15T08:00:00.500Z ")
    assert head.endswith(b' mamori - 0b6f3c1e5d2a4c1b9f3e2a7d8c9e0f11 [mamori@32473 id="0b6f3c1e-5d2a-4c1b-9f3e-2a7d8c9e0f11"'
                         b' kind="vpn" severity="1"] ')  # fmt: skip
    assert text.decode() == "[Mamori] 件名 | 一行目 二行目"

    tcp = socket.create_server(("127.0.0.1", 0))
    cfg = cfg_with({"syslog": {"host": "127.0.0.1", "port": tcp.getsockname()[1], "protocol": "tcp"}})
    SyslogChannel(cfg.notifications.syslog).send(msg)
    conn, _ = tcp.accept()
    conn.settimeout(5)
    framed = b""
    while b" " not in framed or len(framed) < int(framed.split(b" ")[0]) + len(framed.split(b" ")[0]) + 1:
        framed += conn.recv(4096)
    conn.close()
    tcp.close()
    length, _, payload = framed.partition(b" ")
    assert int(length) == len(payload) and payload.startswith(b"<130>1 ")


@pytest.mark.parametrize(("severity", "pri"), [(1, b"<130>"), (2, b"<132>"), (3, b"<133>")])
def test_syslog_priority(severity: int, pri: bytes) -> None:
    assert rfc5424(Message("s", "b", severity), "box", 0).startswith(pri)


def test_webhook_is_signed_with_the_box_key(http_rx, tmp_path: Path) -> None:
    """The receiver checks X-Mamori-Signature over the exact body with keys/webhook.key (0600, made on
    first use, the same afterwards), as the example in docs/ids.md does."""
    import hashlib
    import hmac

    from appliance.notify import channels
    from appliance.notify.signing import verify

    base, got = http_rx
    keys = tmp_path / "keys"
    cfg = cfg_with({"webhook": webhook_cfg(base + "/hook")})
    (webhook,) = channels(cfg, keys)
    assert not (keys / "webhook.key").exists(), "made on first use, not before"
    webhook.send(Message("件名", "本文", 1))
    webhook.send(Message("二通目", "本文", 2))
    key_file = keys / "webhook.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    secret = key_file.read_text().strip().encode()
    for g in got:  # the receiver of docs/ids.md, line for line
        expected = "sha256=" + hmac.new(secret, g["raw"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, g["headers"]["X-Mamori-Signature"])
    assert verify(secret, got[0]["raw"], got[0]["headers"]["X-Mamori-Signature"])
    assert not verify(
        secret,
        got[0]["raw"].replace("件名".encode(), "偽物".encode()),
        got[0]["headers"]["X-Mamori-Signature"],
    )
    assert not verify(b"another box's key" * 2, got[0]["raw"], got[0]["headers"]["X-Mamori-Signature"])


# -- safe targets (issue 18.11) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"webhook": {"url": "https://hooks.example.jp/mamori"}}, None),
        ({"webhook": {"url": "https://198.51.100.80:8443/hook"}}, None),  # TEST-NET: the lab's internet
        ({"webhook": {"url": "https://192.168.1.10/hook", "allow_private": True}}, None),
        ({"webhook": {"url": "http://hooks.example.jp/mamori"}}, "https:// で始めてください"),
        ({"webhook": {"url": "https://user:pw@hooks.example.jp/"}}, "URL の形式が正しくありません"),
        ({"webhook": {"url": "https://192.168.1.10/hook"}}, "allow_private: true を指定してください"),
        ({"webhook": {"url": "https://10.0.0.5/hook"}}, "allow_private: true"),
        ({"webhook": {"url": "https://127.0.0.1:8080/hook"}}, "allow_private: true"),
        ({"webhook": {"url": "https://169.254.169.254/latest"}}, "allow_private: true"),
        ({"webhook": {"url": "https://[::1]/hook"}}, "allow_private: true"),
        ({"webhook": {"url": "https://[fe80::1]/hook"}}, "allow_private: true"),
        ({"webhook": {"url": "https://[::ffff:10.0.0.1]/hook"}}, "allow_private: true"),
        ({"webhook": {"url": "https://localhost/hook"}}, "allow_private: true"),
        ({"line": {"to": "U123"}}, None),
        ({"line": {"to": "U123", "api_base": "https://api.line.me/"}}, None),
        ({"line": {"to": "U123", "api_base": "http://api.line.me"}}, "https://api.line.me だけです"),
        ({"line": {"to": "U123", "api_base": "https://10.0.0.5"}}, "https://api.line.me だけです"),
    ],
)
def test_notification_targets_in_the_config(section: dict, problem: str | None) -> None:
    from appliance.errors import ConfigError

    if problem is None:
        cfg_with(section)
        return
    with pytest.raises(ConfigError) as err:
        cfg_with(section)
    (issue,) = err.value.issues
    assert issue.path.startswith(f"notifications.{next(iter(section))}.") and problem in issue.message.ja


def test_a_name_that_resolves_into_the_lan_is_refused_when_sending(http_rx) -> None:
    """The config held a public name; DNS now answers with a loopback address: nothing is sent."""
    from appliance.config.model import WebhookConfig
    from appliance.notify import NotifyError

    base, got = http_rx
    port = base.rsplit(":", 1)[1]
    rebound = WebhookConfig.model_construct(url=f"https://localhost:{port}/hook", allow_private=False)
    with pytest.raises(NotifyError) as err:
        WebhookChannel(rebound).send(Message("件名", "本文", 1))
    assert "院内・この機器自身のアドレス" in err.value.text("ja") and got == []
    allowed = WebhookConfig.model_construct(url=f"https://localhost:{port}/hook", allow_private=True)
    with pytest.raises(ssl.SSLCertVerificationError):  # reached, and the name is checked against the cert
        WebhookChannel(allowed, timeout=HTTP_S).send(Message("件名", "本文", 1))


def test_a_redirect_is_not_followed(cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.notify import NotifyError

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", "http://10.0.0.5/admin")
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    trust(monkeypatch, cert_dir)
    srv = https_server(Redirect, cert_dir)
    try:
        cfg = cfg_with({"webhook": webhook_cfg(f"https://127.0.0.1:{srv.server_address[1]}/")})
        with pytest.raises(NotifyError, match="307"):
            WebhookChannel(cfg.notifications.webhook, timeout=HTTP_S).send(Message("件名", "本文", 1))
    finally:
        srv.shutdown()
        srv.server_close()
