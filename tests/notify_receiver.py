"""A clinic's webhook receiver for lab tests: HTTPS on a namespace's loopback with a test certificate, one
JSON line per request (Idempotency-Key, X-Mamori-Signature, the exact body), started as its own process so a
test can take it down and bring it back. The box's `mamori` trusts the certificate through SSL_CERT_FILE
(`entry()`), as a real box trusts a real CA."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.timetravel import validity_window

RECEIVER = """
import http.server, json, ssl, sys
port, out, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        line = {"key": self.headers.get("Idempotency-Key"), "sig": self.headers.get("X-Mamori-Signature"),
                "body": body.decode("utf-8")}
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), valid at the shifted and the real time."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    not_before, not_after = validity_window()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = directory / "hook.pem", directory / "hook.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def argv(port: int, out: Path, cert: Path, key: Path) -> list[str]:
    """The receiver's command line (for lab.spawn)."""
    return [sys.executable, "-c", RECEIVER, str(port), str(out), str(cert), str(key)]


def entry(cert: Path) -> tuple[str, ...]:
    """How the box's `mamori` is started so that it trusts the receiver's certificate."""
    return ("env", f"SSL_CERT_FILE={cert}", sys.executable, "-m", "appliance.cli")


def received(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
