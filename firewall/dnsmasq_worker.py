"""Daemon worker that runs dnsmasq and restarts it only when its config file changed.

The daemon restarts area workers whenever a new config revision goes live; dnsmasq must not blink for a
change that does not concern it (a new firewall rule). So dnsmasq outlives a worker generation: the
worker records (pid, config hash) in run_dir/dnsmasq.state, and the next generation adopts the running
process when the PID is still dnsmasq with our config file, restarting it only if the hash differs.
Supervised by PID (never by name). If dnsmasq exits on its own it is started again after a short,
growing pause. On a full stop of the service, systemd's control group takes dnsmasq down with the daemon;
`shutdown()` stops it explicitly (tests, `reset`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from appliance.fileio import atomic_write
from appliance.subsystem import Context
from firewall.dnsmasq import conf_path, config_hash

log = logging.getLogger(__name__)
MAX_PAUSE = 30.0
_CHILDREN: dict[int, subprocess.Popen] = {}  # started by this process: reaped when stopped


def _is_our_dnsmasq(pid: int, conf: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False  # exited, not yet reaped: /proc still shows it as a zombie
    return bool(cmdline) and cmdline[0].endswith(b"dnsmasq") and f"--conf-file={conf}".encode() in cmdline


class DnsmasqWorker:
    name = "dnsmasq"

    def __init__(self, ctx: Context, poll: float = 1.0) -> None:
        self.ctx = ctx
        self.poll = poll
        self.pid: int | None = None
        self.running_hash = ""
        self.restarts = 0

    @property
    def state_file(self) -> Path:
        return self.ctx.paths.run_dir / "dnsmasq.state"

    def _adopt(self, conf: Path) -> None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            pid, digest = int(state["pid"]), str(state["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if _is_our_dnsmasq(pid, conf):
            self.pid, self.running_hash = pid, digest

    def _start(self, conf: Path, digest: str) -> None:
        proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        _CHILDREN[proc.pid] = proc
        self.pid, self.running_hash = proc.pid, digest
        atomic_write(self.state_file, json.dumps({"pid": proc.pid, "hash": digest}))
        log.info("dnsmasq started (pid %d, config %s)", proc.pid, digest[:12])

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
        digest = config_hash(conf.read_text(encoding="utf-8")) if conf.exists() else None
        if self.pid is None:
            self._adopt(conf)
        if digest is None:
            self._stop()
            return self.poll
        if self.pid is not None and not _is_our_dnsmasq(self.pid, conf):
            log.error("dnsmasq (pid %d) exited; starting it again", self.pid)
            child = _CHILDREN.pop(self.pid, None)
            if child is not None:
                child.wait(5)
            self.pid = None
            self.restarts += 1
            return min(MAX_PAUSE, 0.5 * 2 ** min(self.restarts, 6))
        if self.pid is None or digest != self.running_hash:
            if self.pid is not None:
                log.info("dnsmasq config changed; restarting")
            self._stop()
            self._start(conf, digest)
        return self.poll

    def run(self, stop: threading.Event) -> None:
        """Supervise until `stop`; dnsmasq keeps running for the next worker generation to adopt."""
        while not stop.wait(self.step() if not stop.is_set() else 0):
            pass

    def shutdown(self) -> None:
        if self.pid is None:
            self._adopt(conf_path(self.ctx.paths))
        self._stop()
