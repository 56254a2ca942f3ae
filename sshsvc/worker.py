"""Daemon worker that runs sshd while `ssh.enabled`, and restarts it only when sshd_config changed.

The life cycle is appliance.adopted's (shared with dnsmasq and chronyd): sshd outlives a worker
generation and is adopted by the next one, so an unrelated config change does not drop the vendor's
listener; it is supervised by PID, never by name, and stopped when sshd_config is gone (SSH switched
off). sshd_config carries the authorized_keys hash, so a change of keys alone restarts it too.
Sessions already open keep running when the listener stops (sshd forks each into its own session);
only new logins are refused.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from appliance.adopted import AdoptedProcessWorker
from appliance.subsystem import Context
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

    def __init__(self, ctx: Context, poll: float = 1.0) -> None:
        super().__init__(ctx, poll)
        self.missing_logged = False

    def conf_path(self) -> Path:
        return conf_path(self.ctx.paths)

    def conf_marker(self, conf: Path) -> bytes:
        return str(conf).encode()

    def cmdline_is_ours(self, cmdline: list[bytes], conf: Path) -> bool:
        # sshd's listener rewrites its title into one string: "sshd: /usr/sbin/sshd -D -e -f CONF [listener] ..."
        title = b" ".join(cmdline).removeprefix(b"sshd: ") + b" "
        return title.startswith(SSHD.encode() + b" ") and b" -f " + self.conf_marker(conf) + b" " in title

    def config_hash(self, text: str) -> str:
        return config_hash(text)

    def wanted(self, text: str | None) -> bool:
        return bool(text)  # no (or an empty) sshd_config means SSH is off

    def can_start(self) -> bool:
        if Path(SSHD).exists():
            return True
        if not self.missing_logged:
            log.error(MISSING)
            self.missing_logged = True
        return False

    def spawn(self, conf: Path, text: str) -> subprocess.Popen:
        ensure_privsep_dir()
        with open(self.ctx.paths.run_dir / "sshd.log", "ab") as logfile:
            return subprocess.Popen(sshd_argv(conf), stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                                    start_new_session=True)  # fmt: skip
