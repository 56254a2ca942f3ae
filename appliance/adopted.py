"""A daemon worker that runs one helper daemon (dnsmasq, chronyd, sshd) which outlives worker generations.

The daemon restarts area workers whenever a new config revision goes live; a helper daemon must not
blink for a change that does not concern it. So the worker records (pid, config hash) in a state file
under run_dir, and the next generation adopts the running process when that PID is still our program
with our config file, restarting it only when the config's hash differs. Supervised by PID, never by
name. If the process exits on its own it is started again after a short, growing pause. `shutdown()`
stops it explicitly (tests, `reset`); on a real box systemd's control group takes it down with the daemon.

Subclasses say which program, which config file, how to hash it and how to start it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

from appliance.fileio import atomic_write
from appliance.subsystem import Context

log = logging.getLogger(__name__)
MAX_PAUSE = 30.0
_CHILDREN: dict[int, subprocess.Popen] = {}  # started by this process: reaped when stopped


class AdoptedProcessWorker(ABC):
    name = "process"
    program = ""  # the executable's name, as it ends argv[0] in /proc/PID/cmdline
    state_name = ""  # file in run_dir holding {"pid", "hash"}
    executable = ""  # checked before a start (name on PATH or absolute path); "" means no check
    missing_message = ""  # logged once while `executable` is missing (its package is not installed)

    def __init__(self, ctx: Context, poll: float = 1.0) -> None:
        self.ctx = ctx
        self.poll = poll
        self.pid: int | None = None
        self.running_hash = ""
        self.restarts = 0
        self.missing_logged = False

    # -- what a subclass provides ----------------------------------------------------------------------

    @abstractmethod
    def conf_path(self) -> Path:
        """The config file the process reads."""

    def conf_marker(self, conf: Path) -> bytes:
        """The argv element that names our config file (tells our process apart from another one)."""
        return str(conf).encode()

    @abstractmethod
    def config_hash(self, text: str) -> str:
        """What identifies a config: a different hash means a restart."""

    def wanted(self, text: str | None) -> bool:
        """Whether the process should run, given the config file's text (None: no file)."""
        return text is not None

    def can_start(self) -> bool:
        """False while `executable` is missing (said once in the log): an area whose package is not
        installed must not stop the others, and must not fill the log either."""
        if not self.executable or shutil.which(self.executable) is not None:
            return True
        if not self.missing_logged:
            log.error(self.missing_message or f"{self.executable} is not installed; {self.name} cannot run")
            self.missing_logged = True
        return False

    def cmdline_is_ours(self, cmdline: list[bytes], conf: Path) -> bool:
        """Whether /proc/PID/cmdline (split at NULs) is our program reading our config file. A program that
        rewrites its process title (sshd) overrides this."""
        return (
            bool(cmdline) and cmdline[0].endswith(self.program.encode()) and self.conf_marker(conf) in cmdline
        )

    @abstractmethod
    def spawn(self, conf: Path, text: str) -> subprocess.Popen:
        """Start the process in the foreground, in its own session."""

    # -- the shared life cycle -----------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.ctx.paths.run_dir / self.state_name

    def _is_ours(self, pid: int, conf: Path) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            return False  # exited, not yet reaped: /proc still shows it as a zombie
        return self.cmdline_is_ours(cmdline, conf)

    def _adopt(self, conf: Path) -> None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            pid, digest = int(state["pid"]), str(state["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if self._is_ours(pid, conf):
            self.pid, self.running_hash = pid, digest

    def running_pid(self) -> int | None:
        """The PID of our process as recorded by the worker, if it is still ours (for status readers)."""
        self._adopt(self.conf_path())
        return self.pid

    def _start(self, conf: Path, text: str, digest: str) -> None:
        proc = self.spawn(conf, text)
        _CHILDREN[proc.pid] = proc
        self.pid, self.running_hash = proc.pid, digest
        atomic_write(self.state_file, json.dumps({"pid": proc.pid, "hash": digest}))
        log.info("%s started (pid %d, config %s)", self.program, proc.pid, digest[:12])

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
        conf = self.conf_path()
        text = conf.read_text(encoding="utf-8") if conf.exists() else None
        if self.pid is None:
            self._adopt(conf)
        if not self.wanted(text):
            self._stop()
            return self.poll
        assert text is not None
        if self.pid is not None and not self._is_ours(self.pid, conf):
            log.error("%s (pid %d) exited; starting it again", self.program, self.pid)
            child = _CHILDREN.pop(self.pid, None)
            if child is not None:
                child.wait(5)
            self.pid = None
            self.restarts += 1
            return min(MAX_PAUSE, 0.5 * 2 ** min(self.restarts, 6))
        digest = self.config_hash(text)
        if self.pid is None and not self.can_start():
            return MAX_PAUSE
        if self.pid is None or digest != self.running_hash:
            if self.pid is not None:
                log.info("%s config changed; restarting", self.program)
            self._stop()
            self._start(conf, text, digest)
        return self.poll

    def run(self, stop: threading.Event) -> None:
        """Supervise until `stop`; the process keeps running for the next worker generation to adopt."""
        while not stop.wait(self.step() if not stop.is_set() else 0):
            pass

    def shutdown(self) -> None:
        if self.pid is None:
            self._adopt(self.conf_path())
        self._stop()
