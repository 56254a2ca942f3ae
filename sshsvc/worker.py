"""Daemon worker that runs sshd while `ssh.enabled`, and restarts it only when sshd_config changed.

The life cycle is appliance.adopted's (shared with dnsmasq and chronyd): sshd outlives a worker
generation and is adopted by the next one, so an unrelated config change does not drop the vendor's
listener; it is supervised by PID, never by name, and stopped when sshd_config is gone (SSH switched
off). sshd_config carries the authorized_keys hash, so a change of keys alone restarts it too.
Whenever the listener stops (SSH switched off, or restarted for new keys or addresses), the sessions it
accepted are ended too: sshd forks each into its own session, so stopping the listener alone would leave
a vendor whose key was just removed logged in. They are found by parent PID, never by name.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

from appliance.adopted import AdoptedProcessWorker
from sshsvc.render import SSHD, conf_path, config_hash
from sshsvc.subsystem import MISSING, ensure_privsep_dir

log = logging.getLogger(__name__)


def sshd_argv(conf: Path) -> list[str]:
    """-D: stay in the foreground (supervised by PID); -e: log to stderr, i.e. our log file."""
    return [SSHD, "-D", "-e", "-f", str(conf)]


class SshdWorker(AdoptedProcessWorker):
    name = "sshd"
    program = "sshd"
    state_name = "sshd.state"
    executable = SSHD
    missing_message = MISSING

    def conf_path(self) -> Path:
        return conf_path(self.ctx.paths)

    def cmdline_is_ours(self, cmdline: list[bytes], conf: Path) -> bool:
        # sshd's listener rewrites its title into one string: "sshd: /usr/sbin/sshd -D -e -f CONF [listener] ..."
        title = b" ".join(cmdline).removeprefix(b"sshd: ") + b" "
        return title.startswith(SSHD.encode() + b" ") and b" -f " + self.conf_marker(conf) + b" " in title

    def config_hash(self, text: str) -> str:
        return config_hash(text)

    def wanted(self, text: str | None) -> bool:
        return bool(text)  # no (or an empty) sshd_config means SSH is off

    def _stop(self) -> None:
        sessions = session_pids(self.pid) if self.pid is not None else []
        super()._stop()
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if sessions:
            log.info("sshd stopped; %d open session(s) ended", len(sessions))

    def spawn(self, conf: Path, text: str) -> subprocess.Popen:
        ensure_privsep_dir()
        with open(self.ctx.paths.run_dir / "sshd.log", "ab") as logfile:
            return subprocess.Popen(sshd_argv(conf), stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                                    start_new_session=True)  # fmt: skip


def session_pids(listener: int, proc: Path = Path("/proc")) -> list[int]:
    """The per-connection sshd processes forked by this listener: parent PID `listener` and an sshd title."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces, so split after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == listener and cmdline.startswith(b"sshd: "):
            found.append(int(entry.name))
    return found
