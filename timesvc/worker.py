"""Daemon worker that runs chronyd and restarts it only when chrony.conf changed.

Same life cycle as firewall.dnsmasq_worker: chronyd outlives a worker generation (the daemon restarts
workers on every new revision, and the clinic's clocks must not lose their server for a firewall rule);
the worker records (pid, config hash) in run_dir/chrony.state and the next generation adopts the process
when the PID is still chronyd with our config file. Supervised by PID, never by name. If chronyd exits
on its own it is started again after a growing pause. chronyd drops to the _chrony user; its directory
(socket, pid file, drift file) is made for that user, 0750, because chronyd refuses a command socket in a
directory others can read.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from appliance.fileio import atomic_write
from appliance.subsystem import Context
from timesvc.render import chrony_dir, conf_path, config_hash, sets_clock

log = logging.getLogger(__name__)
MAX_PAUSE = 30.0
CHRONY_USER = "_chrony"
_CHILDREN: dict[int, subprocess.Popen] = {}  # started by this process: reaped when stopped


def _is_our_chronyd(pid: int, conf: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False  # exited, not yet reaped
    return bool(cmdline) and cmdline[0].endswith(b"chronyd") and str(conf).encode() in cmdline


def _prepare_dir(directory: Path) -> str:
    """chronyd's directory for the user it drops to; returns that user (root if _chrony does not exist)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        user = pwd.getpwnam(CHRONY_USER)
    except KeyError:
        os.chmod(directory, 0o750)
        return "root"
    os.chown(directory, user.pw_uid, user.pw_gid)
    os.chmod(directory, 0o750)
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


class ChronyWorker:
    name = "chronyd"

    def __init__(self, ctx: Context, poll: float = 1.0) -> None:
        self.ctx = ctx
        self.poll = poll
        self.pid: int | None = None
        self.running_hash = ""
        self.restarts = 0
        self.missing_logged = False

    @property
    def state_file(self) -> Path:
        return self.ctx.paths.run_dir / "chrony.state"

    def _adopt(self, conf: Path) -> None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            pid, digest = int(state["pid"]), str(state["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if _is_our_chronyd(pid, conf):
            self.pid, self.running_hash = pid, digest

    def _start(self, conf: Path, text: str, digest: str) -> None:
        directory = chrony_dir(self.ctx.paths)
        prune_stale_dirs(directory.parent)
        user = _prepare_dir(directory)
        atomic_write(directory / OWNER_FILE, str(self.ctx.paths.state_dir))
        with open(self.ctx.paths.run_dir / "chronyd.log", "ab") as logfile:
            proc = subprocess.Popen(chronyd_argv(conf, text, user), stdin=subprocess.DEVNULL, stdout=logfile,
                                    stderr=logfile, start_new_session=True)  # fmt: skip
        _CHILDREN[proc.pid] = proc
        self.pid, self.running_hash = proc.pid, digest
        atomic_write(self.state_file, json.dumps({"pid": proc.pid, "hash": digest}))
        log.info("chronyd started (pid %d, config %s)", proc.pid, digest[:12])

    def _stop(self) -> None:
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        child = _CHILDREN.pop(pid, None)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if child is not None:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    def step(self) -> float:
        """One supervision step; returns how long to wait before the next."""
        conf = conf_path(self.ctx.paths)
        text = conf.read_text(encoding="utf-8") if conf.exists() else ""
        if self.pid is None:
            self._adopt(conf)
        if not text:
            self._stop()
            return self.poll
        if self.pid is not None and not _is_our_chronyd(self.pid, conf):
            log.error("chronyd (pid %d) exited; starting it again", self.pid)
            child = _CHILDREN.pop(self.pid, None)
            if child is not None:
                child.wait(5)
            self.pid = None
            self.restarts += 1
            return min(MAX_PAUSE, 0.5 * 2 ** min(self.restarts, 6))
        digest = config_hash(text)
        if self.pid is None and shutil.which("chronyd") is None:
            if not self.missing_logged:
                log.error("ntp: chronyd is not installed (package chrony); the time service cannot run")
                self.missing_logged = True
            return MAX_PAUSE
        if self.pid is None or digest != self.running_hash:
            if self.pid is not None:
                log.info("chrony.conf changed; restarting chronyd")
            self._stop()
            self._start(conf, text, digest)
        return self.poll

    def run(self, stop: threading.Event) -> None:
        """Supervise until `stop`; chronyd keeps running for the next worker generation to adopt."""
        while not stop.wait(self.step() if not stop.is_set() else 0):
            pass

    def shutdown(self) -> None:
        if self.pid is None:
            self._adopt(conf_path(self.ctx.paths))
        self._stop()
