"""TLS for the web UI: the box's own self-signed certificate, a clinic's uploaded one, and the server's
SSL context.

Policy: TLS 1.2 and 1.3 only; for 1.2 only forward-secret AEAD suites (ECDHE with AES-GCM or
ChaCha20-Poly1305). No RSA key exchange, no CBC, no SHA-1 MACs, no 3DES/RC4.

The box's own certificate is ECDSA P-256, made with `cryptography`, valid `VALID_DAYS` (397, the longest a
browser accepts for a server certificate) and renewed by the daemon before it ends or when the names the
clinic types change (`tlssvc`). An uploaded certificate (`install_certificate`) is marked as the clinic's
and never replaced automatically. Files are kept in the keys directory (the key 0640: root's, readable by the
web UI's group) and always written under one lock, key first, so that two writers never leave a key of one
certificate beside another.
`CertReloader` gives the server a context that follows the files: a renewal or an upload takes effect on
the next connection, without a restart.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import ipaddress
import logging
import os
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.fileio import atomic_write

log = logging.getLogger(__name__)
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"  # fmt: skip
VALID_DAYS = 397
# Backdated by a day: a box without a battery clock may run a little behind the browser's clock.
BACKDATE = datetime.timedelta(days=1)
OWN_ORGANIZATION = "Mamori (self-signed)"
UPLOADED_MARKER = "web.uploaded"
# The private key: root's and, through keys/' group (setgid, appliance.child_access), the web UI's to read.
KEY_MODE = 0o640
DEFAULT_DNS = ("mamori.local",)
DEFAULT_IPS = ("127.0.0.1",)


def cert_paths(keys_dir: Path) -> tuple[Path, Path]:
    return keys_dir / "web.crt", keys_dir / "web.key"


@dataclass(frozen=True)
class CertInfo:
    """What a person (or the renewal) needs to know about the certificate in use."""

    dns: tuple[str, ...]
    ips: tuple[str, ...]
    fingerprint: str  # SHA-256 of the DER, "AB:CD:..." as browsers and `openssl x509 -fingerprint` show it
    not_before: float
    not_after: float
    uploaded: bool  # the clinic's own: never replaced automatically

    @property
    def names(self) -> tuple[str, ...]:
        return self.dns + self.ips

    def days_left(self, now: float) -> float:
        return (self.not_after - now) / 86400


@contextmanager
def _locked(keys_dir: Path) -> Iterator[None]:
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(keys_dir / ".web.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fingerprint(cert: x509.Certificate) -> str:
    return ":".join(
        f"{b:02X}" for b in hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    )


def _is_own(cert: x509.Certificate) -> bool:
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return cert.issuer == cert.subject and orgs == [OWN_ORGANIZATION]


def describe(cert: x509.Certificate, uploaded: bool) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return CertInfo(
        dns=dns,
        ips=ips,
        fingerprint=fingerprint(cert),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        uploaded=uploaded,
    )


def read_certificate(keys_dir: Path) -> CertInfo | None:
    """The certificate in use, or None if there is none (or it cannot be read: then it is replaced).

    Uploaded means: installed through `install_certificate` (marker file), or not one Mamori made (a box
    whose clinic uploaded one before the marker existed keeps it)."""
    cert_path, key_path = cert_paths(keys_dir)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    if not key_path.exists():
        return None
    return describe(cert, uploaded=(keys_dir / UPLOADED_MARKER).exists() or not _is_own(cert))


def make_self_signed(
    keys_dir: Path,
    dns: tuple[str, ...] = DEFAULT_DNS,
    ips: tuple[str, ...] = DEFAULT_IPS,
    now: float | None = None,
    days: int = VALID_DAYS,
) -> CertInfo:
    """Write a new key and self-signed certificate naming `dns` and `ips` (replacing what is there)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mamori"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, OWN_ORGANIZATION)])  # fmt: skip
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    start = datetime.datetime.fromtimestamp(wall() if now is None else now, datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    cert_path, key_path = cert_paths(keys_dir)
    with _locked(keys_dir):
        atomic_write(key_path, key_pem, mode=KEY_MODE)
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        (keys_dir / UPLOADED_MARKER).unlink(missing_ok=True)
    log.info("wrote a self-signed web certificate in %s (%s)", cert_path, ", ".join(dns + ips))
    return describe(cert, uploaded=False)


def ensure_certificate(
    keys_dir: Path, names: tuple[str, ...] = DEFAULT_DNS, ips: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """Create a self-signed certificate if there is none yet; return (cert, key) paths."""
    cert_path, key_path = cert_paths(keys_dir)
    with _locked(keys_dir):
        present = cert_path.exists() and key_path.exists()
    if not present:
        make_self_signed(keys_dir, names, tuple(dict.fromkeys((*DEFAULT_IPS, *ips))))
    return cert_path, key_path


def install_certificate(keys_dir: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Replace the certificate with an uploaded one, after checking the key belongs to it. It is marked
    as the clinic's: the box warns before it ends but never replaces it by itself."""
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
    with _locked(keys_dir):
        atomic_write(keys_dir / UPLOADED_MARKER, b"uploaded\n", mode=0o600)
        atomic_write(key_path, key_pem, mode=KEY_MODE)
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


class CertReloader:
    """A server context that follows the certificate files: rebuilt when either file changes (a renewal,
    an upload), kept as it was if the new pair cannot be loaded yet (caught between the two renames, or
    broken), so a connection is never refused for a half-written pair."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[int, int, int], ...] | None = None
        self._context: ssl.SSLContext | None = None

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for p in (self.cert, self.key):
            st = p.stat()
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def context(self) -> ssl.SSLContext:
        with self._lock:
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    self._context = server_context(self.cert, self.key)
                    if self._stamp is not None:
                        log.info("web certificate reloaded from %s", self.cert)
                    self._stamp = stamp
            except (OSError, ssl.SSLError) as exc:
                if self._context is None:
                    raise
                log.warning("web certificate not reloaded, keeping the one in use: %s", exc)
            assert self._context is not None
            return self._context
