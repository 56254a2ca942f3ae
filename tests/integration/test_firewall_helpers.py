"""Helpers of the firewall integration tests: throwaway namespaces and running our code inside one.

Code under test runs in a forked child that has joined the namespace (setns), so the test process
itself never touches the root namespace's nftables. No tests here.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from appliance.errors import ApplyError, MamoriError
from lab.waiting import wait_for

CLONE_NEWNET = 0x40000000


def sh(
    ns: str, *argv: str, check: bool = True, timeout: float = 30, **kw: Any
) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, capture_output=True, text=True,
                          timeout=timeout, **kw)  # fmt: skip


@contextmanager
def netns(tag: str = "") -> Iterator[str]:
    name = f"fw{os.getpid()}{tag}{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        sh(name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        for pid in subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True
        ).stdout.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", name], check=False)


def _enter(ns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


def _call(fn: Callable, args: tuple) -> Any:
    try:
        return fn(*args)
    except MamoriError as exc:  # typed errors do not pickle; carry them over as data
        return {"__mamori_error__": exc.code, "ja": exc.text("ja"), "en": exc.text("en")}


def in_ns(ns: str, fn: Callable, *args: Any, timeout: float = 60) -> Any:
    """Run fn(*args) in a child process inside `ns`; a MamoriError there is raised here as ApplyError."""
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_enter, initargs=(ns,)) as pool:
        result = pool.submit(_call, fn, args).result(timeout=timeout)
    if isinstance(result, dict) and "__mamori_error__" in result:
        raise ApplyError(result["ja"], result["en"], code=result["__mamori_error__"])
    return result


def ruleset(ns: str) -> Any:
    """`nft -j list ruleset` without the parts that change by themselves (remaining timeouts)."""
    data = json.loads(sh(ns, "nft", "-j", "list", "ruleset").stdout)
    return _strip(data)


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "expires"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def set_elements(ns: str, name: str) -> list[str]:
    data = json.loads(sh(ns, "nft", "-j", "list", "set", "inet", "mamori", name).stdout)
    out = []
    for obj in data["nftables"]:
        for e in obj.get("set", {}).get("elem", []):
            out.append(e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e)
    return out


# -- a clinic from lab/topology.py with the box's addresses set by hand (the network subsystem is not ours) --


def configure_box(lab: Any, cfg: Any) -> None:
    """Give the box the addresses of the config, a default route, and forwarding; nothing else."""
    for iface in cfg.interfaces:
        if iface.address and iface.address != "dhcp":
            lab.run("box", ["ip", "addr", "add", iface.address, "dev", iface.name])
        if iface.gateway:
            lab.run("box", ["ip", "route", "replace", "default", "via", iface.gateway])
    lab.run("box", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    # the lab's router routes without NAT and needs the way back to nothing but the box's wan address


def state_ctx(state_dir: str) -> Any:
    from pathlib import Path

    from appliance.paths import Paths
    from appliance.storage import Database
    from appliance.subsystem import Context

    ctx = Context(Paths(state_dir=Path(state_dir)), Database(Path(state_dir) / "db" / "mamori.db"))
    ctx.paths.ensure()
    ctx.db.migrate()
    return ctx


def apply_config(cfg: Any, state_dir: str) -> None:
    """Runs inside the box namespace: render, check, apply, verify (as the orchestrator would)."""
    from firewall.subsystem import FirewallSubsystem

    sub = FirewallSubsystem(state_ctx(state_dir))
    rendered = sub.render(cfg)
    sub.check(rendered)
    sub.apply(rendered)
    sub.verify(rendered)


def sets_call(cfg: Any, state_dir: str, method: str, *args: Any) -> Any:
    """Runs inside the box namespace: FirewallSets(ctx, cfg).<method>(*args)."""
    from firewall.sets import FirewallSets

    return getattr(FirewallSets(state_ctx(state_dir), cfg), method)(*args)


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.2) -> float | None:
    """Poll `check` (lab.waiting.wait_for: bounded in time and count); the seconds it took, or None if it
    never became true."""
    import time

    start = time.monotonic()
    return time.monotonic() - start if wait_for(check, timeout, step) else None


_CONNECT = "import socket,sys\nsocket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()"
_UDP = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);s.settimeout(float(sys.argv[3]))\n"
    "s.sendto(b'ping', (sys.argv[1], int(sys.argv[2])));d,_=s.recvfrom(100);sys.exit(0 if d==b'ping' else 3)"
)
_UDP_ECHO = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);s.bind(('0.0.0.0', int(sys.argv[1])))\n"
    "while True:\n d,a=s.recvfrom(2000);s.sendto(d,a)\n"
)


def tcp_ok(lab: Any, key: str, address: str, port: int, timeout: float = 1.0) -> bool:
    """A full TCP handshake from `key` to address:port (python, not nc: nc rejects fractional timeouts)."""
    res = lab.run(
        key, ["python3", "-c", _CONNECT, address, str(port), str(timeout)], check=False, timeout=timeout + 10
    )
    return res.returncode == 0


def udp_ok(lab: Any, key: str, address: str, port: int, timeout: float = 1.0) -> bool:
    """One UDP datagram there and its echo back."""
    res = lab.run(
        key, ["python3", "-c", _UDP, address, str(port), str(timeout)], check=False, timeout=timeout + 10
    )
    return res.returncode == 0


def udp_echo(lab: Any, key: str, port: int) -> Any:
    """A UDP echo server (killed by the lab by PID); returns once it is bound."""
    proc = lab.spawn(key, ["python3", "-c", _UDP_ECHO, str(port)])
    wait_until(lambda: f":{port} " in lab.run(key, ["ss", "-Hlun"], check=False).stdout, timeout=5, step=0.05)
    return proc


@contextmanager
def clinic_lab(state: str, cfg: Any = None) -> Iterator[tuple[Any, Any, str]]:
    """The lab clinic with the firewall of `cfg` (default: the example) applied in the box: (lab, cfg, state)."""
    from lab.topology import Lab
    from tests.unit.test_firewall_helpers import config

    cfg = cfg or config()
    lab = Lab(f"fwl{os.getpid() % 100000}{uuid.uuid4().hex[:3]}")
    try:
        lab.up()
        configure_box(lab, cfg)
        in_ns(lab.ns("box"), apply_config, cfg, state)
        yield lab, cfg, state
    finally:
        lab.down()


_MULTI = (
    "import selectors,socket,sys\n"
    "sel=selectors.DefaultSelector()\n"
    "for spec in sys.argv[1:]:\n"
    " proto,port=spec.split('/')\n"
    " s=socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto=='tcp' else socket.SOCK_DGRAM)\n"
    " s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',int(port)))\n"
    " if proto=='tcp': s.listen(64)\n"
    " sel.register(s,selectors.EVENT_READ,proto)\n"
    "conns=[]\n"
    "while True:\n"
    " for key,_ in sel.select():\n"
    "  s=key.fileobj\n"
    "  if key.data=='tcp':\n"
    "   c,a=s.accept();c.sendall(a[0].encode()+b'\\n');conns.append(c)\n"
    "  else:\n"
    "   d,a=s.recvfrom(2000);s.sendto(d,a)\n"
)


def serve(lab: Any, key: str, specs: list[str]) -> Any:
    """One process answering on every 'tcp/N' (sends the peer's address) and 'udp/N' (echo) given."""
    proc = lab.spawn(key, ["python3", "-c", _MULTI, *specs])
    tcp = [s.split("/")[1] for s in specs if s.startswith("tcp/")]
    ready = wait_until(lambda: all(f":{p} " in lab.run(key, ["ss", "-Hltn"], check=False).stdout for p in tcp),
                       timeout=5, step=0.05)  # fmt: skip
    if ready is None:
        raise RuntimeError(f"listeners on {key} did not start")
    return proc


_WHO = "import socket,sys\nc=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\nprint(c.recv(100).decode().strip())"


def tcp_peer_seen(lab: Any, key: str, address: str, port: int) -> str:
    """Connect and return the source address the server saw (shows NAT)."""
    return lab.run(key, ["python3", "-c", _WHO, address, str(port)], check=False, timeout=15).stdout.strip()


_DNS_QUERY = (
    "import socket,struct,sys\n"
    "name=sys.argv[2]\n"
    "q=struct.pack('!HHHHHH',0x1234,0x0100,1,0,0,0)+b''.join(bytes([len(p)])+p.encode() for p in name.split('.'))+b'\\0'+struct.pack('!HH',1,1)\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);s.sendto(q,(sys.argv[1],53));r,_=s.recvfrom(2000)\n"
    "an=struct.unpack('!H',r[6:8])[0]\n"
    "print(socket.inet_ntoa(r[-4:]) if an else 'NXDOMAIN')\n"
)


def dns_a(runner: Callable[[list[str]], Any], server: str, name: str) -> str:
    """Resolve `name` (A record) at `server` with a hand-built query; 'NXDOMAIN' or the address ('' on timeout)."""
    return runner(["python3", "-c", _DNS_QUERY, server, name]).stdout.strip()
