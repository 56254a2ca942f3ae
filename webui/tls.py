"""TLS for the web UI: the self-signed certificate made at first start, and the server's SSL context.

Policy: TLS 1.2 and 1.3 only; for 1.2 only forward-secret AEAD suites (ECDHE with AES-GCM or
ChaCha20-Poly1305). No RSA key exchange, no CBC, no SHA-1 MACs, no 3DES/RC4. The certificate is ECDSA
P-256, made with `cryptography`, kept in the keys directory (key 0600) and replaced by an upload
(`install_certificate`), never overwritten by a restart.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.errors import MamoriError
from appliance.fileio import atomic_write

log = logging.getLogger(__name__)
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"  # fmt: skip


def cert_paths(keys_dir: Path) -> tuple[Path, Path]:
    return keys_dir / "web.crt", keys_dir / "web.key"


def ensure_certificate(
    keys_dir: Path, names: tuple[str, ...] = ("mamori.local",), ips: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """Create a self-signed certificate if there is none yet; return (cert, key) paths."""
    cert_path, key_path = cert_paths(keys_dir)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mamori"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mamori (self-signed)")])  # fmt: skip
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", *ips)]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("created a self-signed web certificate in %s", cert_path)
    return cert_path, key_path


def install_certificate(keys_dir: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Replace the certificate with an uploaded one, after checking the key belongs to it."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError:
        raise MamoriError("証明書または秘密鍵の形式が正しくありません（PEM 形式にしてください）",
                          "the certificate or key is not valid PEM", code="tls.invalid") from None  # fmt: skip
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, spki) != key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise MamoriError(
            "秘密鍵がこの証明書のものではありません",
            "the key does not match the certificate",
            code="tls.mismatch",
        )
    cert_path, key_path = cert_paths(keys_dir)
    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, cert_pem, mode=0o644)


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    return context


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return harden(context)
