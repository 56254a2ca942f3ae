"""A real DNS primary in a lab namespace (bind9's `named`) with a TSIG-protected dynamic zone: what a vendor's
hub runs so that each clinic's box can update its IPv6 name (vpn/ddns.py, docs/vpn-lines.md, issue 17.2).

The configuration is the one docs/vpn-lines.md shows the vendor (one key per clinic, `update-policy` that lets
that key change only its own name's AAAA), written into a directory of the test's own; named runs in the
foreground as root inside the namespace, is started by the lab (stopped by PID in `Lab.down`) and answers on
the one address given. `resolver` points a namespace's libc at it (/etc/netns/<ns>/resolv.conf, which
`ip netns exec` mounts over /etc/resolv.conf), so `wg set ... endpoint NAME:PORT` resolves through it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.topology import Lab

NAMED = shutil.which("named") or "/usr/sbin/named"


@dataclass
class DnsServer:
    lab: Lab
    key: str  # the namespace key named runs in
    address: str
    zone: str
    directory: Path
    proc: subprocess.Popen

    def aaaa(self, name: str, ns_key: str | None = None) -> set[str]:
        """The AAAA set of `name` as this server answers it now (asked from `ns_key`, default its own)."""
        code = (
            "import sys,dns.message,dns.query\n"
            "q=dns.message.make_query(sys.argv[1],'AAAA')\n"
            "r=dns.query.tcp(q,sys.argv[2],timeout=3)\n"
            "print(' '.join(x.address for s in r.answer for x in s if s.rdtype==28))\n"
        )
        out = self.lab.run(
            ns_key or self.key, [sys.executable, "-c", code, name + ".", self.address], timeout=20
        )
        return set(out.stdout.split())

    def log(self) -> str:
        path = self.directory / "named.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def named_conf(directory: Path, address: str, zone: str, key_name: str, secret: str, host: str) -> str:
    """named.conf for the lab: the vendor's example from docs/vpn-lines.md, plus lab-only paths."""
    return f"""options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    listen-on {{ none; }};
    listen-on-v6 {{ {address}; }};
    recursion no;
    dnssec-validation no;
    allow-query {{ any; }};
}};
controls {{ }};
key "{key_name}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
zone "{zone}" {{
    type primary;
    file "{directory}/{zone}.zone";
    update-policy {{ grant {key_name} name {host}. AAAA; }};
}};
"""


def start_named(lab: Lab, key: str, directory: Path, address: str, zone: str, key_name: str, secret: str,
                host: str) -> DnsServer:  # fmt: skip
    """Write the zone and config, start named in `key`'s namespace and wait (bounded) until it answers."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{zone}.zone").write_text(
        f"$TTL 60\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n@ IN NS ns.{zone}.\n"
        f"ns IN AAAA {address}\n",
        encoding="utf-8",
    )
    conf = directory / "named.conf"
    conf.write_text(named_conf(directory, address, zone, key_name, secret, host), encoding="utf-8")
    check = subprocess.run(["named-checkconf", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = lab.spawn(key, [NAMED, "-g", "-n", "1", "-c", str(conf)], log_path=directory / "named.log")
    server = DnsServer(lab, key, address, zone, directory, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"named exited ({proc.returncode}):\n{server.log()[-2000:]}")
        if "running" in server.log():
            return server
        time.sleep(0.2)
    raise RuntimeError(f"named did not start within 30 s:\n{server.log()[-2000:]}")


def new_secret() -> str:
    """A TSIG secret as `tsig-keygen` makes it (32 random bytes, base64)."""
    return base64.b64encode(os.urandom(32)).decode()


def resolver(lab: Lab, key: str, address: str) -> Path:
    """Point `key`'s namespace at the lab DNS server; returns the directory to remove afterwards."""
    etc = Path("/etc/netns") / lab.ns(key)
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(
        f"nameserver {address}\noptions timeout:2 attempts:2\n", encoding="utf-8"
    )
    return etc
