"""Running the real Mamori appliance inside the lab's box namespace: the CLI and the daemon."""

from __future__ import annotations

import grp
import pwd
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "clinic.yaml"


@dataclass
class Box:
    lab: Lab
    config: Path
    state_dir: Path
    daemon: subprocess.Popen | None = None
    # How the box's `mamori` is started: a lab test may put a wrapper in front (tests/clockshift.py).
    entry: tuple[str, ...] = (sys.executable, "-m", "appliance.cli")
    log_path: Path | None = None  # the daemon's log (None: daemon.log in the state directory)

    def mamori(self, *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None):
        """Run `mamori ARGS` in the box namespace (as the appliance would run it)."""
        argv = [*self.entry, "--config", str(self.config), "--state-dir", str(self.state_dir), *args]
        res = self.lab.run("box", argv, check=False, timeout=timeout, input=stdin)
        if check and res.returncode != 0:
            raise AssertionError(
                f"mamori {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res

    def nft_json(self) -> str:
        return self.lab.run("box", ["nft", "-j", "list", "ruleset"]).stdout

    def start_daemon(self, wait: float = 60) -> subprocess.Popen:
        log_path = self.log_path or self.state_dir / "daemon.log"
        argv = [*self.entry, "--config", str(self.config), "--state-dir", str(self.state_dir), "daemon"]
        # UMask=0077 as in the box's unit (image/systemd/mamori.service): every file the daemon makes is root's
        # alone unless it opens it to an account itself, so the lab sees what the children may really read.
        self.daemon = self.lab.spawn("box", argv, log_path=log_path, umask=0o077)
        pidfile = self.state_dir / "run" / "mamori.pid"
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.daemon.returncode}:\n{log_path.read_text()}")
            if pidfile.exists():  # written once the live revision is applied and workers run
                return self.daemon
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not become ready:\n{log_path.read_text()}")

    def listener(self, port: int) -> int | None:
        """The process the daemon started that listens on TCP `port` (the web UI on 443, the VPN portal on
        8443): its direct child, not the daemon (which bound the socket and holds it too) nor a worker the
        child forked."""
        daemon_pid = int((self.state_dir / "run" / "mamori.pid").read_text())
        out = self.lab.run("box", ["ss", "-Hltnp", f"sport = :{port}"]).stdout
        for pid in sorted({int(p) for p in re.findall(r"pid=(\d+)", out)}):
            try:
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, IndexError, ValueError):
                continue
            if ppid == daemon_pid:
                return pid
        return None

    def stop_daemon(self) -> int | None:
        if self.daemon is None:
            return None
        code = self.lab.stop(self.daemon)
        self.daemon = None
        return code


def lab_config_text(lab: Lab, text: str | None = None) -> str:
    """The example config, with the changes a shared machine needs: a WireGuard interface name of its
    own (WireGuard's UAPI sockets in /var/run/wireguard are global across namespaces), and an NTP service
    that never sets the machine's clock."""
    data = yaml.safe_load(text if text is not None else EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data.setdefault("vpn", {})["interface"] = lab.wg_name()
    if isinstance(data.get("mgmt"), dict):  # the vendor hub's link: a WireGuard interface of its own too
        data["mgmt"]["interface"] = lab.wg_name("m")
    # The lab shares this machine's clock (time is not namespaced): its chronyd measures and serves time,
    # never sets it, and asks only the lab's internet-side server, never the public pool names.
    ntp = data.setdefault("ntp", {})
    ntp["set_clock"] = False
    ntp.setdefault("servers", ["198.51.100.10"])
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def make_box(lab: Lab, state_dir: Path, config_text: str | None = None) -> Box:
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "config.yaml"
    config.write_text(lab_config_text(lab, config_text), encoding="utf-8")
    return Box(lab, config, state_dir)


def privileges(pid: int) -> dict[str, str]:
    """What /proc/PID/status says of a process's privileges: Uid, Gid, Groups, CapInh/Prm/Eff/Bnd/Amb,
    NoNewPrivs."""
    keep = {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"}
    lines = Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines) if k in keep}


def runs_as(pid: int, user: str) -> bool:
    """Every uid of the process (real, effective, saved, file system) is `user`'s."""
    return privileges(pid)["Uid"].split() == [str(pwd.getpwnam(user).pw_uid)] * 4


def in_group(pid: int, group: str) -> bool:
    """Whether `group` is the process's gid or among its supplementary groups."""
    seen = privileges(pid)
    return str(grp.getgrnam(group).gr_gid) in {*seen["Gid"].split(), *seen["Groups"].split()}


def without_capabilities(pid: int) -> bool:
    """No capability in any set, and none to be gained back (no_new_privs)."""
    seen = privileges(pid)
    caps = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    return all(int(seen[c], 16) == 0 for c in caps) and seen["NoNewPrivs"] == "1"
