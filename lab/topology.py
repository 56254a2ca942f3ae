"""A small clinic built from network namespaces and veth pairs, on this machine only.

    server 198.51.100.10 ─┐
    attacker .66 ─────────┼─ [inet switch] ─ router 198.51.100.1 | 203.0.113.1 ─ wan0 [Mamori box]
    doctor (home) .20 ────┘                                                     lan0 ─ [lan switch] ─ 電子カルテ .10, 受付PC .20, PACS .30
                                                                                guest0 ─ [guest switch] ─ phone .50
                                                                                dev0 ─ [devices switch] ─ X線装置 .40

The router routes without NAT (Mamori's wan address is reachable from the "internet" side, so scans
and VPN tests work); Mamori itself masquerades the clinic. Every namespace name starts with the lab's
prefix, every process the lab starts is recorded by PID and killed by PID, and `down()` removes all of
it. Addresses here belong to the lab's namespaces only; nothing leaves the machine.
Used by `make demo`, the integration tests and the benchmarks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostSpec:
    key: str
    switch: str
    address: str  # with prefix length
    gateway: str


# Internet side and clinic hosts. The box's own addresses come from the Mamori config, not from here.
HOSTS: tuple[HostSpec, ...] = (
    HostSpec("server", "inet", "198.51.100.10/24", "198.51.100.1"),
    HostSpec("attacker", "inet", "198.51.100.66/24", "198.51.100.1"),
    HostSpec("doctor", "inet", "198.51.100.20/24", "198.51.100.1"),
    HostSpec("emr", "lan", "192.168.10.10/24", "192.168.10.1"),
    HostSpec("reception", "lan", "192.168.10.20/24", "192.168.10.1"),
    HostSpec("pacs", "lan", "192.168.10.30/24", "192.168.10.1"),
    HostSpec("phone", "guest", "192.168.20.50/24", "192.168.20.1"),
    HostSpec("xray", "devices", "192.168.30.40/24", "192.168.30.1"),
)
SWITCHES: tuple[str, ...] = ("inet", "lan", "guest", "devices")
# Box interface name for each clinic switch (matches examples/clinic.yaml).
BOX_PORTS: dict[str, str] = {"lan": "lan0", "guest": "guest0", "devices": "dev0"}
ROUTER_OUTSIDE = "198.51.100.1/24"
ROUTER_INSIDE = "203.0.113.1/24"
BOX_WAN = "203.0.113.2"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass
class Lab:
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    port_counter: int = 0

    def wg_name(self) -> str:
        """A WireGuard interface name unique on this machine (<= 15 chars), for this lab's box."""
        return "wg" + hashlib.sha1(self.prefix.encode()).hexdigest()[:10]

    def ns(self, key: str) -> str:
        """The namespace of a host ('box', 'router', 'emr', ...) or a switch ('sw-lan', ...)."""
        return f"{self.prefix}-{key}"

    def _add_ns(self, key: str) -> str:
        name = self.ns(key)
        ip("netns", "add", name)
        self.namespaces.append(name)
        self.run(key, ["ip", "link", "set", "lo", "up"])
        return name

    def _veth(self, a_key: str, a_if: str, b_key: str, b_if: str) -> None:
        ip(
            "link",
            "add",
            a_if,
            "netns",
            self.ns(a_key),
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            self.ns(b_key),
        )
        self.run(a_key, ["ip", "link", "set", a_if, "up"])
        self.run(b_key, ["ip", "link", "set", b_if, "up"])

    def _switch_port(self, switch: str, host_key: str, host_if: str) -> None:
        self.port_counter += 1
        port = f"p{self.port_counter}"
        self._veth(f"sw-{switch}", port, host_key, host_if)
        self.run(f"sw-{switch}", ["ip", "link", "set", port, "master", "br0"])

    def up(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _build(self) -> None:
        for switch in SWITCHES:
            self._add_ns(f"sw-{switch}")
            self.run(f"sw-{switch}", ["ip", "link", "add", "br0", "type", "bridge"])
            self.run(f"sw-{switch}", ["ip", "link", "set", "br0", "up"])
        self._add_ns("router")
        self._add_ns("box")
        self._switch_port("inet", "router", "eth0")
        self.run("router", ["ip", "addr", "add", ROUTER_OUTSIDE, "dev", "eth0"])
        self._veth("router", "eth1", "box", "wan0")
        self.run("router", ["ip", "addr", "add", ROUTER_INSIDE, "dev", "eth1"])
        self.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for switch, box_if in BOX_PORTS.items():
            self._switch_port(switch, "box", box_if)
        for host in HOSTS:
            self.add_host(host)

    def add_host(self, host: HostSpec, mac: str | None = None) -> str:
        """Plug one more host into a switch (tests use it for 'a new device appears')."""
        self._add_ns(host.key)
        self._switch_port(host.switch, host.key, "eth0")
        if mac:
            self.run(host.key, ["ip", "link", "set", "eth0", "address", mac])
        self.run(host.key, ["ip", "addr", "add", host.address, "dev", "eth0"])
        self.run(host.key, ["ip", "route", "add", "default", "via", host.gateway])
        return self.ns(host.key)

    def add_bare_host(self, key: str, switch: str, mac: str | None = None) -> str:
        """Plug a host with no address into a switch: it must ask DHCP for one, like a patient's phone."""
        self._add_ns(key)
        self._switch_port(switch, key, "eth0")
        if mac:
            self.run(key, ["ip", "link", "set", "eth0", "address", mac])
        return self.ns(key)

    def run(
        self, key: str, argv: list[str], check: bool = True, timeout: float = 60, **kw
    ) -> subprocess.CompletedProcess:
        """Run a command in a host's namespace and wait for it."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(key), *argv],
            check=check, capture_output=True, text=True, timeout=timeout, **kw,
        )  # fmt: skip

    def spawn(self, key: str, argv: list[str], log_path: Path | None = None, **kw) -> subprocess.Popen:
        """Start a long-running process in a namespace; `down()` kills it by PID."""
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(key), *argv],
            stdout=out, stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, **kw,
        )  # fmt: skip
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10) -> int | None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def down(self) -> None:
        """Kill every process the lab started (by PID) and every process left in its namespaces, then
        delete the namespaces. Safe to call twice."""
        for proc in reversed(self.processes):
            self.stop(proc)
        self.processes.clear()
        # Then whatever is left in its namespaces (a confirm timer, wireguard-go, Suricata), found by PID:
        # SIGTERM first so that daemons remove their sockets (wireguard-go's UAPI socket is global), then
        # SIGKILL for anything still there.
        left = {name: self._pids(name) for name in self.namespaces}
        for pids in left.values():
            self._signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(self._pids(name) for name in left):
            time.sleep(0.05)
        for name in reversed(self.namespaces):
            self._signal(self._pids(name), signal.SIGKILL)
            ip("netns", "del", name, check=False)
        self.namespaces.clear()

    @staticmethod
    def _pids(name: str) -> list[int]:
        return [int(p) for p in ip("netns", "pids", name, check=False).stdout.split()]

    @staticmethod
    def _signal(pids: list[int], sig: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- reachability helpers used by tests and the demo -------------------------------------------------

    def ping(self, key: str, address: str, count: int = 1, wait: float = 1.0) -> bool:
        res = self.run(
            key, ["ping", "-n", "-c", str(count), "-W", str(wait), "-i", "0.2", address], check=False
        )
        return res.returncode == 0

    def tcp_connect(self, key: str, address: str, port: int, timeout: int = 2) -> bool:
        """True if a TCP handshake completes (OpenBSD nc; its -w takes whole seconds only)."""
        res = self.run(
            key, ["nc", "-z", "-w", str(int(timeout)), address, str(port)], check=False, timeout=timeout + 5
        )
        return res.returncode == 0

    def listen_tcp(self, key: str, port: int) -> subprocess.Popen:
        """A TCP listener that accepts any number of connections (python, so no nc flavour surprises)."""
        code = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.bind(('::',int(sys.argv[1])));s.listen(64)\n"
            "conns=[]\n"
            "while True:\n c,_=s.accept();conns.append(c);c.sendall(b'hello\\n')\n"
        )
        proc = self.spawn(key, ["python3", "-c", code, str(port)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if f":{port} " in self.run(key, ["ss", "-Hltn"], check=False).stdout:
                return proc
            time.sleep(0.05)
        raise RuntimeError(f"listener on {key}:{port} did not start")
