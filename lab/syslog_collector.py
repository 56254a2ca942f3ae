"""A SIEM's syslog collector for tests, the fleet lab and the benchmark: Debian's rsyslog receiving RFC 5425
(syslog over TLS, octet-counted) with imtcp + gtls, writing each message as it arrived, one per line.

Also makes the test PKI it needs: a CA, the collector's server certificate (for the names and addresses the
box will dial) and, optionally, a client certificate for a box. Certificates are made with `cryptography` in
the validity window the caller gives (tests pass tests.timetravel.validity_window(), so that both a process
travelling in time and GnuTLS, which reads the real clock, accept them).

The collector runs in a namespace the caller made (or in the caller's own), is started and killed by PID,
and never reads /etc/rsyslog.conf. `event_ids()` reads what arrived, in order, as the `event` parameter of
Mamori's structured data (siem/events.py), so a test can count every event exactly once.

    pki = make_pki(tmp / "pki", names=["collector.lab"], addresses=["198.51.100.77"])
    collector = SyslogCollector(tmp / "collector", pki, netns="lab-hub")
    collector.start()
    ...
    collector.kill()          # SIGKILL by PID: the box must queue
    collector.start()         # the box delivers what it queued
    assert collector.wait_for(expected_ids, timeout=60)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.waiting import wait_for

EVENT_ID = re.compile(r'\bevent="([a-z]+-[0-9]+)"')
DEFAULT_PORT = 6514


@dataclass(frozen=True)
class Pki:
    """Paths of the test PKI's PEM files; client_* are None when no client certificate was made."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path | None = None
    client_key: Path | None = None


def _default_window() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(days=1), now + dt.timedelta(days=1)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    path.chmod(0o600)


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, cn: str, sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier, window: tuple[dt.datetime, dt.datetime],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(window[0])
        .not_valid_after(window[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(
    directory: Path,
    names: list[str],
    addresses: list[str] = (),  # type: ignore[assignment]
    client_name: str | None = None,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> Pki:
    """A CA, a server certificate for `names` (DNS SANs, the first is also the CN) and `addresses` (IP SANs),
    and a client certificate for `client_name` if given. Written under `directory` (made 0700)."""
    window = window or _default_window()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mamori test SIEM CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(window[0])
        .not_valid_after(window[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    _write_key(directory / "ca.key", ca_key)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert, key = _leaf(ca_key, ca_name, names[0] if names else str(addresses[0]), sans,
                      ExtendedKeyUsageOID.SERVER_AUTH, window)  # fmt: skip
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    _write_key(directory / "server.key", key)
    client_cert = client_key = None
    if client_name:
        cert, key = _leaf(ca_key, ca_name, client_name, [x509.DNSName(client_name)],
                          ExtendedKeyUsageOID.CLIENT_AUTH, window)  # fmt: skip
        client_cert, client_key = directory / "client.pem", directory / "client.key"
        client_cert.write_bytes(cert.public_bytes(pem))
        _write_key(client_key, key)
    return Pki(directory / "ca.pem", directory / "ca.key", directory / "server.pem", directory / "server.key",
               client_cert, client_key)  # fmt: skip


def collector_config(directory: Path, pki: Pki, port: int, address: str, require_client_cert: bool) -> str:
    """rsyslog.conf of the collector: TLS in, every message's raw text out to received.log, one a line."""
    auth = 'StreamDriver.AuthMode="x509/certvalid"' if require_client_cert else 'StreamDriver.AuthMode="anon"'
    return f"""# Test SIEM collector (lab/syslog_collector.py)
global(workDirectory="{directory / "work"}" maxMessageSize="64k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{pki.ca_cert}"
       defaultNetstreamDriverCertFile="{pki.server_cert}"
       defaultNetstreamDriverKeyFile="{pki.server_key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" {auth} MaxSessions="2000")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="in") {{
  action(type="omfile" file="{directory / "received.log"}" template="raw" flushOnTXEnd="on" asyncWriting="off")
}}
input(type="imtcp" port="{port}" address="{address}" ruleset="in")
"""


class SyslogCollector:
    """One rsyslogd receiving TLS syslog; started, killed and restarted by PID."""

    def __init__(
        self, directory: Path, pki: Pki, port: int = DEFAULT_PORT, address: str = "0.0.0.0",
        netns: str | None = None, require_client_cert: bool = False,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.pki, self.port, self.address, self.netns = pki, port, address, netns
        self.require_client_cert = require_client_cert
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "work").mkdir(exist_ok=True)
        self.conf = directory / "rsyslog.conf"
        self.received = directory / "received.log"

    def _argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def listening(self) -> bool:
        res = subprocess.run(self._argv(["ss", "-Hltn", f"sport = :{self.port}"]), capture_output=True,
                             text=True, timeout=10, check=False)  # fmt: skip
        return bool(res.stdout.strip())

    def start(self, timeout: float = 60) -> int:
        """Start rsyslogd (foreground, our config only) and wait until it listens; returns its PID."""
        if shutil.which("rsyslogd") is None:
            raise RuntimeError("rsyslogd is not installed (packages rsyslog, rsyslog-gnutls: make setup)")
        self.conf.write_text(
            collector_config(self.directory, self.pki, self.port, self.address, self.require_client_cert)
        )
        log = open(self.directory / "rsyslogd.log", "ab")
        argv = ["rsyslogd", "-n", "-f", str(self.conf), "-i", str(self.directory / "rsyslogd.pid")]
        self.proc = subprocess.Popen(self._argv(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited with {self.proc.returncode}" if self.proc.poll() is not None else "not listening"
                )
                self.stop()
                raise RuntimeError(f"the collector did not start ({why} after {timeout:.0f} s at most); "
                                   f"see {self.directory / 'rsyslogd.log'}")  # fmt: skip
            time.sleep(0.05)
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the collector by its PID (SIGKILL by default: a collector that dies, not one that stops)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        (self.directory / "rsyslogd.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def lines(self) -> list[str]:
        try:
            return self.received.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def event_ids(self) -> list[str]:
        """The `event` id of every message that arrived, in arrival order (repeats kept)."""
        out = []
        for line in self.lines():
            m = EVENT_ID.search(line)
            if m:
                out.append(m.group(1))
        return out

    def duplicates(self) -> dict[str, int]:
        return {k: n for k, n in Counter(self.event_ids()).items() if n > 1}

    def wait_for(self, ids: set[str] | list[str], timeout: float = 60, poll: float = 0.2) -> bool:
        """True once every id in `ids` has arrived; False after `timeout` seconds."""
        wanted = set(ids)
        return wait_for(lambda: wanted <= set(self.event_ids()), timeout, step=poll)
