"""A small clinic built from network namespaces and veth pairs, on this machine only.

    server 198.51.100.10 ─┐
    attacker .66 ─────────┼─ [inet switch] ─ router 198.51.100.1 | 203.0.113.1 ─ wan0 [Mamori box]
    doctor (home) .20 ────┘                                                     lan0 ─ [lan switch] ─ 電子カルテ .10, 受付PC .20, PACS .30
                                                                                guest0 ─ [guest switch] ─ phone .50
                                                                                dev0 ─ [devices switch] ─ X線装置 .40

The router routes without NAT (Mamori's wan address is reachable from the "internet" side, so scans
and VPN tests work); Mamori itself masquerades the clinic. A test may ask for a clinic NAT router
(`nat_clinic`) and a support vendor's hub on the internet side (`add_hub`, issue 14). A fleet of clinics
(lab/fleet.py) shares one internet segment: a Lab built with `clinic=False` holds only that switch (and the
hub), and each clinic's Lab plugs its router into it (`internet=Internet(...)`) instead of a switch of its own.
Every namespace
name starts with the lab's prefix, every process the lab starts is recorded by PID and killed by PID,
and `down()` removes all of it. Addresses here belong to the lab's namespaces only; nothing leaves the machine.
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

from lab.running import BuiltWhole

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


# The support vendor's hub (issue 14): on the internet side, only in tests that call Lab.add_hub().
HUB = HostSpec("hub", "inet", "198.51.100.77/24", "198.51.100.1")
HUB_PORT = 51820


@dataclass
class Hub:
    """The hub of Lab.add_hub(): its WireGuard interface, public key, endpoint and tunnel address."""

    lab: Lab
    key: str
    ifname: str
    public_key: str
    endpoint: str
    address: str

    def add_peer(self, public_key: str, allowed_ips: list[str]) -> None:
        """A box as a peer; a hostile hub may also list clinic networks here and route them into the tunnel."""
        self.lab.run(
            self.key, ["wg", "set", self.ifname, "peer", public_key, "allowed-ips", ",".join(allowed_ips)]
        )
        for net in allowed_ips:
            self.lab.run(self.key, ["ip", "route", "replace", net, "dev", self.ifname])

    def transfer(self, public_key: str) -> tuple[int, int]:
        """(received, sent) bytes with that peer."""
        out = self.lab.run(self.key, ["wg", "show", self.ifname, "transfer"], check=False).stdout
        for line in out.splitlines():
            fields = line.split("\t")
            if fields[0] == public_key and len(fields) == 3:
                return int(fields[1]), int(fields[2])
        return 0, 0

    def latest_handshake(self, public_key: str) -> int:
        out = self.lab.run(self.key, ["wg", "show", self.ifname, "latest-handshakes"], check=False).stdout
        for line in out.splitlines():
            peer, _, when = line.partition("\t")
            if peer == public_key:
                return int(when or 0)
        return 0


@dataclass(frozen=True)
class Internet:
    """An internet segment another Lab owns (its inet switch, by namespace name): a clinic's router plugs its
    eth0 into it with `router_address` instead of building an inet switch of its own (lab/fleet.py)."""

    switch_ns: str
    router_address: str  # with prefix length, unique on the segment


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass
class Lab(BuiltWhole):
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    port_counter: int = 0
    hosts: tuple[HostSpec, ...] = HOSTS  # plugged in by up(); a fleet clinic leaves the internet ones out
    clinic: bool = True  # False: only the inet switch and the hosts, no router or box (a fleet's hub side)
    internet: Internet | None = None  # plug the router into a shared internet segment (lab/fleet.py)

    def wg_name(self, suffix: str = "") -> str:
        """A WireGuard interface name unique on this machine (<= 15 chars), for this lab's box; `suffix`
        (up to 3 characters) names another one of the same lab (the management link "m", the hub "h")."""
        return "wg" + hashlib.sha1(self.prefix.encode()).hexdigest()[:10] + suffix[:3]

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

    def _build(self) -> None:
        switches = SWITCHES if self.clinic else ("inet",)
        for switch in switches:
            if switch == "inet" and self.internet is not None:
                continue  # the shared segment belongs to another Lab
            self._add_ns(f"sw-{switch}")
            self.run(f"sw-{switch}", ["ip", "link", "add", "br0", "type", "bridge"])
            self.run(f"sw-{switch}", ["ip", "link", "set", "br0", "up"])
        if not self.clinic:
            for host in self.hosts:
                self.add_host(host)
            return
        self._add_ns("router")
        self._add_ns("box")
        if self.internet is None:
            self._switch_port("inet", "router", "eth0")
            self.run("router", ["ip", "addr", "add", ROUTER_OUTSIDE, "dev", "eth0"])
        else:
            self._shared_port(self.internet)
        self._veth("router", "eth1", "box", "wan0")
        self.run("router", ["ip", "addr", "add", ROUTER_INSIDE, "dev", "eth1"])
        self.run("router", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for switch, box_if in BOX_PORTS.items():
            self._switch_port(switch, "box", box_if)
        for host in self.hosts:
            self.add_host(host)

    def _shared_port(self, internet: Internet) -> None:
        """The router's eth0 on another Lab's internet switch; the port's name there is made from this lab's
        prefix, so clinics built at the same time never pick the same one. Deleting the router namespace
        deletes the pair."""
        port = "u" + hashlib.sha1(self.prefix.encode()).hexdigest()[:10]
        ip("link", "add", port, "netns", internet.switch_ns, "type", "veth", "peer", "name", "eth0", "netns",
           self.ns("router"))  # fmt: skip
        subprocess.run(["ip", "netns", "exec", internet.switch_ns, "ip", "link", "set", port, "master", "br0",
                        "up"], check=True, capture_output=True, text=True)  # fmt: skip
        self.run("router", ["ip", "link", "set", "eth0", "up"])
        self.run("router", ["ip", "addr", "add", internet.router_address, "dev", "eth0"])

    def add_host(self, host: HostSpec, mac: str | None = None) -> str:
        """Plug one more host into a switch (tests use it for 'a new device appears')."""
        self._add_ns(host.key)
        self._switch_port(host.switch, host.key, "eth0")
        if mac:
            self.run(host.key, ["ip", "link", "set", "eth0", "address", mac])
        self.run(host.key, ["ip", "addr", "add", host.address, "dev", "eth0"])
        self.run(host.key, ["ip", "route", "add", "default", "via", host.gateway])
        return self.ns(host.key)

    def nat_clinic(self) -> None:
        """Make the router a clinic's NAT router: the box's wan leaves as the router's address, and nothing
        from the internet side may open a connection inward (only replies pass). Only tests that ask."""
        rules = (
            "table ip labnat {\n"
            ' chain post { type nat hook postrouting priority 100; oifname "eth0" masquerade; }\n'
            " chain inward { type filter hook forward priority 0; policy accept;\n"
            '  iifname "eth0" ct state established,related accept; iifname "eth0" drop; }\n'
            "}\n"
        )
        self.run("router", ["nft", "-f", "-"], input=rules)

    def add_hub(self, key: str = "hub", address: str = HUB.address, tunnel: str = "10.77.0.1/16") -> Hub:
        """A support vendor's hub on the internet side: a namespace with a WireGuard interface (wireguard-go,
        a name unique on the machine) listening on HUB_PORT with `tunnel` as its address and no peer yet.
        Only tests that ask get one; `down()` stops wireguard-go by PID with the rest of the lab."""
        self.add_host(HostSpec(key, "inet", address, HUB.gateway))
        ifname = self.wg_name("h")
        private = subprocess.run(["wg", "genkey"], check=True, capture_output=True, text=True).stdout.strip()
        public = subprocess.run(["wg", "pubkey"], input=private + "\n", check=True, capture_output=True,
                                text=True).stdout.strip()  # fmt: skip
        proc = self.spawn(key, ["wireguard-go", "-f", ifname])
        deadline = time.monotonic() + 10
        while self.run(key, ["wg", "show", ifname], check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wireguard-go for the hub did not start ({proc.returncode})")
            time.sleep(0.05)
        self.run(key, ["wg", "set", ifname, "listen-port", str(HUB_PORT), "private-key", "/dev/stdin"],
                 input=private + "\n")  # fmt: skip
        self.run(key, ["ip", "addr", "add", tunnel, "dev", ifname])
        self.run(key, ["ip", "link", "set", ifname, "up"])
        return Hub(self, key, ifname, public, f"{address.split('/')[0]}:{HUB_PORT}", tunnel.split("/")[0])

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
        deadline = time.monotonic() + 30  # a bound: python starts slowly on a loaded machine
        while time.monotonic() < deadline:
            if f":{port} " in self.run(key, ["ss", "-Hltn"], check=False).stdout:
                return proc
            time.sleep(0.05)
        raise RuntimeError(f"listener on {key}:{port} did not start")
