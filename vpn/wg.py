"""The live WireGuard interface, driven only through `ip` and `wg` (wireguard-tools).

The kernel module is used where present; otherwise `wireguard-go` is started in the foreground as its own
session and its pid kept in `run_dir`, so it is stopped by pid, never by name. Peers are changed with a
single `wg set` holding every addition, change and removal computed against `wg show dump`: the
interface is never restarted, so other users' tunnels do not notice. (`wg syncconf` was not used because
a peer file without `PrivateKey` clears the interface key, and we never write the key anywhere else.)
`wg show dump` prints the private key on its first line; `parse_dump` drops it at once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ApplyError
from vpn.keys import public_key

log = logging.getLogger(__name__)

DEFAULT_IFNAME = "mamori-wg"
WAIT_S = 5.0
UAPI_DIR = Path("/var/run/wireguard")


@dataclass(frozen=True)
class PeerState:
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int
    rx: int
    tx: int
    keepalive: int | None


@dataclass(frozen=True)
class DumpState:
    public_key: str | None
    listen_port: int
    peers: dict[str, PeerState]
    malformed: int = 0


def _none(text: str) -> str | None:
    return None if text in ("(none)", "") else text


def parse_dump(text: str) -> DumpState:
    """Parse `wg show IF dump`. Peers can be attacker-influenced (endpoints): bad lines are counted, logged."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ApplyError("WireGuard の状態を読めませんでした", "empty `wg show dump` output")
    head = lines[0].split("\t")
    if len(head) != 4 or not head[2].isdigit():
        raise ApplyError("WireGuard の状態を読めませんでした", "unexpected `wg show dump` interface line")
    peers: dict[str, PeerState] = {}
    malformed = 0
    for line in lines[1:]:
        f = line.split("\t")
        try:
            if len(f) != 8:
                raise ValueError(f"{len(f)} fields")
            ips = () if f[3] == "(none)" else tuple(x for x in f[3].split(",") if x)
            keepalive = None if f[7] == "off" else int(f[7])
            peers[f[0]] = PeerState(f[0], _none(f[2]), ips, int(f[4]), int(f[5]), int(f[6]), keepalive)
        except ValueError as exc:
            malformed += 1
            log.warning("skipping a malformed `wg show dump` peer line (%s)", exc)
    return DumpState(_none(head[1]), int(head[2]), peers, malformed)


@dataclass
class PeerDiff:
    """`wg set` arguments for what changed: (key, allowed_ips) to set, keys to remove."""

    upsert: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upsert or self.remove)


def diff_peers(want: dict[str, tuple[str, ...]], have: dict[str, PeerState]) -> PeerDiff:
    d = PeerDiff()
    for key, ips in want.items():
        if key not in have or sorted(have[key].allowed_ips) != sorted(ips):
            d.upsert.append((key, ips))
    d.remove = [k for k in have if k not in want]
    return d


class WgInterface:
    """One WireGuard interface, optionally inside a network namespace (`ip netns exec`)."""

    def __init__(
        self, name: str = DEFAULT_IFNAME, run_dir: Path | None = None, netns: str | None = None
    ) -> None:
        if not (1 <= len(name) <= 15):
            raise ApplyError(
                "インターフェース名は15文字以内です", "an interface name is at most 15 characters"
            )
        self.name = name
        self.netns = netns
        self.run_dir = Path(run_dir) if run_dir else None
        self.wait_s = WAIT_S  # how long wireguard-go gets to come up (a slow Pi under load needs a few s)

    def _argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(self._argv(argv), capture_output=True, text=True, timeout=15, check=False)
        if check and res.returncode != 0:
            raise ApplyError(
                f"VPN の設定に失敗しました（{argv[0]}）",
                f"{' '.join(argv[:3])} failed: {res.stderr.strip()[:300]}",
            )
        return res

    @property
    def pid_file(self) -> Path | None:
        return self.run_dir / f"wireguard-go-{self.name}.pid" if self.run_dir else None

    def exists(self) -> bool:
        return self.run(["ip", "link", "show", "dev", self.name], check=False).returncode == 0

    def create(self) -> str:
        """Create the interface; returns "kernel" or "wireguard-go"."""
        if self.run(["ip", "link", "add", self.name, "type", "wireguard"], check=False).returncode == 0:
            return "kernel"
        log.info("no WireGuard kernel module: starting wireguard-go for %s", self.name)
        try:
            proc = subprocess.Popen(
                self._argv(["wireguard-go", "-f", self.name]),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI that started it; stopped by pid in delete()
            )  # fmt: skip
        except FileNotFoundError:
            raise ApplyError(
                "WireGuard が使えません（カーネルモジュールも wireguard-go もありません）",
                "WireGuard is unavailable: no kernel module and no wireguard-go",
            ) from None
        if self.pid_file:
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(str(proc.pid))
        try:
            self._wait_up(proc)
        except ApplyError:
            self._abandon(proc)
            raise
        return "wireguard-go"

    def _wait_up(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ApplyError(
                    "wireguard-go が起動しませんでした", f"wireguard-go exited with {proc.returncode}"
                )
            if (
                self.exists()
                and self.run(["wg", "show", self.name, "listen-port"], check=False).returncode == 0
            ):
                return
            time.sleep(0.05)
        raise ApplyError("wireguard-go が起動しませんでした", "wireguard-go did not come up in time")

    def _abandon(self, proc: subprocess.Popen[bytes]) -> None:
        """A start that failed leaves nothing behind: our process (by its pid), its pid file, its link."""
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("wireguard-go pid %d did not exit after SIGKILL", proc.pid)
        if self.pid_file:
            self.pid_file.unlink(missing_ok=True)
        if self.exists():
            self.run(["ip", "link", "del", self.name], check=False)
        (UAPI_DIR / f"{self.name}.sock").unlink(missing_ok=True)

    def configure(
        self, address: str, address6: str | None, listen_port: int | None, private_key: Path
    ) -> None:
        """Addresses, port and key, each changed only if it differs (a port change would drop sessions).
        `listen_port` None keeps whatever port the interface has (a tunnel that only dials out)."""
        for addr in (address, address6):
            if addr:
                self.run(["ip", "addr", "replace", addr, "dev", self.name])
        state = self.dump()
        args: list[str] = []
        if listen_port is not None and state.listen_port != listen_port:
            args += ["listen-port", str(listen_port)]
        if state.public_key != public_key(Path(private_key).read_text(encoding="ascii").strip()):
            args += ["private-key", str(private_key)]
        if args:
            self.run(["wg", "set", self.name, *args])
        self.run(["ip", "link", "set", self.name, "up"])

    def dump(self) -> DumpState:
        return parse_dump(self.run(["wg", "show", self.name, "dump"]).stdout)

    def set_peers(self, want: dict[str, tuple[str, ...]]) -> PeerDiff:
        """Make the peer list exactly `want` in one `wg set`; unchanged peers are not touched."""
        diff = diff_peers(want, self.dump().peers)
        if diff:
            self.run(["wg", "set", self.name, *peer_args(diff)])
            log.info("vpn peers: %d set, %d removed", len(diff.upsert), len(diff.remove))
        return diff

    def add_peer(self, key: str, allowed_ips: tuple[str, ...]) -> None:
        self.run(["wg", "set", self.name, *peer_args(PeerDiff(upsert=[(key, allowed_ips)]))])

    def remove_peer(self, key: str) -> None:
        self.run(["wg", "set", self.name, "peer", key, "remove"])

    def delete(self) -> None:
        """Remove the interface and stop a wireguard-go this object (or an earlier run) started."""
        if self.exists():
            self.run(["ip", "link", "del", self.name], check=False)
        pid_file = self.pid_file
        if pid_file and pid_file.exists():
            pid = int(pid_file.read_text().strip() or 0)
            _stop_pid(pid)
            pid_file.unlink(missing_ok=True)
            # A wireguard-go killed hard leaves its UAPI socket behind; it was ours, so it goes too.
            (UAPI_DIR / f"{self.name}.sock").unlink(missing_ok=True)


def peer_args(diff: PeerDiff) -> list[str]:
    args: list[str] = []
    for key, ips in diff.upsert:
        args += ["peer", key, "allowed-ips", ",".join(ips)]
    for key in diff.remove:
        args += ["peer", key, "remove"]
    return args


def _stop_pid(pid: int) -> None:
    """SIGTERM, wait a little, then SIGKILL; only a wireguard-go pid recorded by us is ever passed here."""
    if pid <= 1:
        return
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return
    if comm != "wireguard-go":
        log.warning("pid %d is %s, not wireguard-go: not stopping it", pid, comm)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # it exited on its own (deleting the link stops wireguard-go)
        return
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.02)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
