"""The served web UI speaks TLS 1.2/1.3 only, with strong suites only, plain HTTP only redirects, and a renewed
certificate is served from the next handshake on.
Real gunicorn, real OpenSSL, on the loopback of a namespace made for the test."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from tests.webui_fixtures import Served, serve_in_namespace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_in_namespace(tmp_path_factory.mktemp("tls"), "t", https_port=9443, http_port=9080) as s:
        yield s


def _client(minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.minimum_version, ctx.maximum_version = minimum, maximum
    return ctx


def _handshake(served: Served, ctx: ssl.SSLContext) -> tuple[str, str]:
    with socket.create_connection(("127.0.0.1", served.https_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.version() or "", tls.cipher()[0]


@pytest.mark.parametrize(
    ("minimum", "maximum", "ciphers", "ok"),
    [
        (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3, None, True),
        (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, None, True),
        (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0", False),
        (
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_2,
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0",
            False,
        ),
        (
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_2,
            "AES128-GCM-SHA256:AES256-SHA256:AES128-SHA:@SECLEVEL=0",
            False,
        ),
        (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384", True),
    ],
    ids=["tls1.3", "tls1.2", "tls1.0-1.1", "cbc-sha1", "no-forward-secrecy", "ecdhe-gcm"],
)
def test_tls_versions_and_ciphers(served: Served, minimum, maximum, ciphers, ok: bool) -> None:
    ctx = _client(minimum, maximum, ciphers)
    if ok:
        version, cipher = _handshake(served, ctx)
        assert version in ("TLSv1.2", "TLSv1.3")
        assert "GCM" in cipher or "CHACHA20" in cipher
    else:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            _handshake(served, ctx)


def test_default_client_gets_tls13(served: Served) -> None:
    version, _ = _handshake(served, _client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED))
    assert version == "TLSv1.3"


def test_certificate_is_self_signed_ecdsa_and_key_private(served: Served) -> None:
    key = served.state / "keys" / "web.key"
    assert key.stat().st_mode & 0o037 == 0  # root's; its group (on a box mamori-web, child_access) may read
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()
    pem = ssl.get_server_certificate(("127.0.0.1", served.https_port))
    assert pem.strip() == (served.state / "keys" / "web.crt").read_text().strip()


def test_plain_http_only_redirects(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=5)
    conn.request("GET", "/alerts/?state=open", headers={"Host": "mamori.local"})
    r = conn.getresponse()
    assert r.status == 301
    assert r.getheader("Location") == f"https://mamori.local:{served.https_port}/alerts/?state=open"
    assert r.read() == b""
    conn.request("GET", "//evil.example/", headers={"Host": "evil.example/@x"})
    r = conn.getresponse()
    assert r.getheader("Location").startswith(f"https://127.0.0.1:{served.https_port}/")  # never elsewhere


def test_https_serves_the_app_with_headers(served: Served) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", served.https_port, timeout=10,
                                       context=_client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED))  # fmt: skip
    conn.request("GET", "/")
    r = conn.getresponse()
    assert r.status == 302 and r.getheader("Location").endswith("/setup/")  # fresh box: the wizard first
    assert "frame-ancestors 'none'" in r.getheader("Content-Security-Policy")
    assert r.getheader("Strict-Transport-Security")
    assert Path(served.state / "db" / "mamori.db").exists()


def test_a_renewal_is_served_at_once_with_the_lan_address(served: Served) -> None:
    """The box renews its certificate (here: the names changed — a config with the clinic's LAN address);
    the running server hands out the new one on the next handshake, without a restart."""
    from cryptography import x509

    from appliance.config.load import load_config
    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context
    from tests.webui_fixtures import EXAMPLE
    from webui.tls_renew import renew_if_due

    def served_cert() -> x509.Certificate:
        return x509.load_pem_x509_certificate(
            ssl.get_server_certificate(("127.0.0.1", served.https_port)).encode()
        )

    before = served_cert()
    assert "192.168.10.1" not in {str(ip) for ip in _san_ips(before)}
    ctx = Context(
        paths=Paths(config=served.config, state_dir=served.state),
        db=Database(served.state / "db" / "mamori.db"),
    )
    renewal = renew_if_due(ctx, load_config(EXAMPLE).model, "mamori", time.time(), actor="test", source="cli")
    # "names" at the real time; under MAMORI_TEST_NOW the server's first certificate (made at the real time)
    # may already count as expiring for this process's moved clock: either way it is renewed.
    assert renewal is not None and renewal.reason in ("names", "expiring")
    after = served_cert()
    assert {"192.168.10.1", "10.99.0.1", "127.0.0.1"} <= {str(ip) for ip in _san_ips(after)}
    assert after.fingerprint(hashes.SHA256()).hex(":").upper() == renewal.new.fingerprint
    assert served.proc.poll() is None  # the same server process: reloaded, not restarted


def _san_ips(cert) -> list:
    from cryptography import x509

    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.IPAddress
    )
