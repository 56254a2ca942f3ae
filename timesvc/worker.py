"""Daemon worker that runs chronyd and restarts it only when chrony.conf changed.

The clinic's clocks must not lose their server for a firewall rule, so chronyd outlives a worker
generation and is adopted by the next one (the life cycle is appliance.adopted's, shared with dnsmasq).
chronyd drops to the _chrony user; its directory (socket, pid file, drift file) is made for that user,
0750, because chronyd refuses a command socket in a directory others can read.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from appliance.adopted import AdoptedProcessWorker
from appliance.fileio import atomic_write
from timesvc.render import chrony_dir, conf_path, config_hash, sets_clock

log = logging.getLogger(__name__)
CHRONY_USER = "_chrony"


def _prepare_dir(directory: Path) -> str:
    """chronyd's directory for the user it drops to; returns that user (root if _chrony does not exist)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        user = pwd.getpwnam(CHRONY_USER)
    except KeyError:
        os.chmod(directory, 0o750)
        return "root"
    # The mode is set while root owns the directory: the box's daemon keeps CAP_CHOWN but not CAP_FOWNER
    # (image/systemd/mamori.service), so it may not chmod a directory it already handed to _chrony (it
    # did, and chronyd never started on the box). Handed back first when an earlier start handed it over.
    os.chown(directory, 0, 0)
    os.chmod(directory, 0o750)
    os.chown(directory, user.pw_uid, user.pw_gid)
    return CHRONY_USER


OWNER_FILE = "state_dir"  # which state directory a /run/mamori/chrony-* directory belongs to


def prune_stale_dirs(root: Path, limit: int = 200) -> int:
    """Remove chronyd directories of state directories that no longer exist (a lab box long gone).

    Only directories carrying our owner file are touched; returns how many were removed."""
    removed = 0
    for directory in sorted(root.glob("chrony-*"))[:limit]:
        try:
            owner = Path((directory / OWNER_FILE).read_text(encoding="utf-8").strip())
        except OSError:
            continue
        if owner.is_absolute() and not owner.exists():
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


def chronyd_argv(conf: Path, text: str, user: str) -> list[str]:
    argv = ["chronyd", "-d", "-u", user, "-f", str(conf)]
    return argv if sets_clock(text) else [*argv, "-x"]


class ChronyWorker(AdoptedProcessWorker):
    name = "chronyd"
    program = "chronyd"
    state_name = "chrony.state"
    executable = "chronyd"
    missing_message = "ntp: chronyd is not installed (package chrony); the time service cannot run"

    def conf_path(self) -> Path:
        return conf_path(self.ctx.paths)

    def config_hash(self, text: str) -> str:
        return config_hash(text)

    def wanted(self, text: str | None) -> bool:
        return bool(text)  # an empty chrony.conf means the time service is off

    def spawn(self, conf: Path, text: str) -> subprocess.Popen:
        directory = chrony_dir(self.ctx.paths)
        prune_stale_dirs(directory.parent)
        user = _prepare_dir(directory)
        atomic_write(directory / OWNER_FILE, str(self.ctx.paths.state_dir))
        with open(self.ctx.paths.run_dir / "chronyd.log", "ab") as logfile:
            return subprocess.Popen(chronyd_argv(conf, text, user), stdin=subprocess.DEVNULL, stdout=logfile,
                                    stderr=logfile, start_new_session=True)  # fmt: skip
