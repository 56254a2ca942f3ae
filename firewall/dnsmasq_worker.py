"""Daemon worker that runs dnsmasq as a child and restarts it only when its config file changed.

Supervised by PID (never by name): the worker started it, the worker stops it. If dnsmasq exits on its
own it is started again after a short, growing pause (bounded), and the exit is logged.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

from appliance.subsystem import Context
from firewall.dnsmasq import conf_path, config_hash

log = logging.getLogger(__name__)
MAX_PAUSE = 30.0


class DnsmasqWorker:
    name = "dnsmasq"

    def __init__(self, ctx: Context, poll: float = 1.0) -> None:
        self.ctx = ctx
        self.poll = poll
        self.proc: subprocess.Popen | None = None
        self.running_hash = ""
        self.restarts = 0

    def _conf(self) -> tuple[Path, str | None]:
        path = conf_path(self.ctx.paths)
        return path, config_hash(path.read_text(encoding="utf-8")) if path.exists() else None

    def _start(self, path: Path, digest: str) -> None:
        self.proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", f"--conf-file={path}"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        self.running_hash = digest
        log.info("dnsmasq started (pid %d, config %s)", self.proc.pid, digest[:12])

    def _stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def step(self) -> float:
        """One supervision step; returns how long to wait before the next."""
        path, digest = self._conf()
        if digest is None:
            self._stop()
            return self.poll
        if self.proc is not None and self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace")[-500:] if self.proc.stderr else ""
            log.error("dnsmasq exited with %s: %s", self.proc.returncode, err.strip())
            self.proc = None
            self.restarts += 1
            return min(MAX_PAUSE, 0.5 * 2 ** min(self.restarts, 6))
        if self.proc is None or digest != self.running_hash:
            if self.proc is not None:
                log.info("dnsmasq config changed; restarting")
            self._stop()
            self._start(path, digest)
        return self.poll

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.step() if not stop.is_set() else 0):
                pass
        finally:
            self._stop()
