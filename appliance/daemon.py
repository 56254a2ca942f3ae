"""`mamori daemon`: reconciles the kernel with the live revision at start (network and firewall first),
then hosts the long-running work of every area (EVE ingestion, VPN monitor, schedulers) as supervised
worker threads.

If the daemon dies, the kernel keeps the last policy it was given: nftables state does not depend on
this process, so a crash is fail-closed, never fail-open. SIGTERM stops it cleanly; SIGHUP re-applies and restarts the workers and the web UI process.
systemd's notify protocol (READY, STOPPING, WATCHDOG) is spoken when NOTIFY_SOCKET is set.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from appliance import daemonlock
from appliance.actions.server import ActionServer
from appliance.area import load
from appliance.areas import hooks
from appliance.clockwatch import ClockWatch, StepHandler
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.disk import DiskWatch
from appliance.errors import MamoriError
from appliance.fileio import atomic_write
from appliance.logcap import LogCapWorker
from appliance.service import ConfigService
from appliance.subsystem import Context
from appliance.webserver import WebServerWorker

log = logging.getLogger("mamori.daemon")

# Every area's workers (appliance.areas), in the areas' order.
WORKER_MODULES: tuple[str, ...] = tuple(hooks("workers"))
# Areas that keep wall-time deadlines standing for durations: each module's on_clock_step(ctx, before, delta)
# moves them when the wall clock steps (appliance.clockwatch).
CLOCK_STEP_MODULES: tuple[str, ...] = tuple(hooks("clock_step"))
MAX_BACKOFF = 60.0
# How long a config change waits for each worker of the old generation to stop before starting the next.
STOP_WAIT_S = 10.0


class Worker(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message — what journald and a SIEM can parse."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def sd_notify(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), path)


@dataclass
class Supervised:
    """Runs a worker in a thread; restarts it with exponential back-off when it raises."""

    worker: Worker
    stop: threading.Event
    thread: threading.Thread | None = None
    restarts: int = 0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=self.worker.name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.worker.run(self.stop)
                return
            except Exception:  # a worker bug must not take the daemon down; it is logged and retried
                log.exception("worker %s crashed; restarting in %.0f s", self.worker.name, backoff)
                self.restarts += 1
            if time.monotonic() - started > 5 * MAX_BACKOFF:
                backoff = 1.0
            self.stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


class ConfirmWatch:
    """Reverts an unconfirmed `apply --confirm` after a reboot or if the timer process was lost."""

    name = "confirm-watch"

    def __init__(self, service: ConfigService) -> None:
        self.service = service

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            if self.service.pending() is not None:
                self.service.revert_if_unconfirmed()


def collect_workers(
    ctx: Context, cfg: MamoriConfig, modules: tuple[str, ...] = WORKER_MODULES
) -> list[Worker]:
    workers: list[Worker] = []
    for name in modules:
        workers.extend(load(name).daemon_workers(ctx, cfg))
    return workers


def clock_step_handlers(modules: tuple[str, ...] = CLOCK_STEP_MODULES) -> list[tuple[str, StepHandler]]:
    return [(name, load(name).on_clock_step) for name in modules]


class Daemon:
    def __init__(
        self, ctx: Context, worker_factory: Callable[[Context, MamoriConfig], list[Worker]] = collect_workers
    ):
        self.ctx = ctx
        self.service = ConfigService(ctx)
        self.worker_factory = worker_factory
        self.stop_all = threading.Event()
        self.reload = threading.Event()
        self.generation_stop = threading.Event()
        self.supervised: list[Supervised] = []
        self.persistent: list[Supervised] = []
        self.live_revision: int | None = None
        self.web: WebServerWorker | None = None

    def reconcile(self) -> MamoriConfig | None:
        try:
            rev = self.service.reconcile()
            if rev is None and self.ctx.paths.config.exists():
                # First boot of a box whose config was prepared (by the vendor or the image): apply it.
                text = self.ctx.paths.config.read_text(encoding="utf-8")
                rev = self.service.apply(text, "system", "boot", "起動時に設定ファイルを反映")
        except MamoriError as exc:
            # The kernel keeps whatever policy it had (fail-closed); say loudly why nothing new was applied.
            log.critical("could not apply the live revision: %s", exc.text("en"))
            rev = self.service.current()
        except Exception:
            # A bug in an engine must not crash-loop the daemon at boot: the web UI (the way to fix the
            # config) would go down with it. apply_all has already restored what it had changed.
            log.critical("could not apply the live revision (unexpected error)", exc_info=True)
            rev = self.service.current()
        self.live_revision = rev.id if rev else None
        if rev is None:
            log.warning("no config revision yet: apply one with `mamori config apply`")
            return None
        log.info("revision %s is live", rev.id)
        return parse_config(rev.config_text).model

    def start_persistent(self) -> None:
        """Workers that live as long as the daemon, across config changes (the web UI must not blink)."""
        self.web = WebServerWorker(self.ctx)
        # The action socket before the web UI: its changes go there (appliance.actions).
        workers = (ConfirmWatch(self.service), ActionServer(self.ctx), self.web, LogCapWorker(self.ctx),
                   ClockWatch(self.ctx, clock_step_handlers()), DiskWatch(self.ctx))  # fmt: skip
        self.persistent = [Supervised(w, self.stop_all) for w in workers]
        for s in self.persistent:
            s.start()

    def start_workers(self, cfg: MamoriConfig | None) -> None:
        """Workers of the areas, restarted with the new config whenever the live revision changes."""
        self.generation_stop = threading.Event()
        workers: list[Worker] = self.worker_factory(self.ctx, cfg) if cfg is not None else []
        self.supervised = [Supervised(w, self.generation_stop) for w in workers]
        for s in self.supervised:
            s.start()
        log.info("started workers: %s", ", ".join(s.worker.name for s in self.supervised))

    def stop_workers(self) -> None:
        self.generation_stop.set()
        for s in self.supervised:
            if s.thread:
                s.thread.join(timeout=STOP_WAIT_S)
                if s.thread.is_alive():
                    # The next generation starts beside it (a port or NFLOG group it still holds makes the new
                    # one fail and retry): said in the log, where a late stop is otherwise invisible.
                    log.warning("worker %s did not stop within %g s", s.worker.name, STOP_WAIT_S)

    def run(self) -> int:
        lock = daemonlock.hold(self.ctx.paths.run_dir)  # before touching anything: one daemon per box
        pidfile = self.ctx.paths.run_dir / daemonlock.PID_NAME
        signal.signal(signal.SIGTERM, lambda *_: self.stop_all.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_all.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload.set())
        cfg = self.reconcile()
        holder = self.ctx.db.hold()  # before the web UI starts (appliance.storage)
        self.start_workers(cfg)
        self.start_persistent()
        atomic_write(pidfile, f"{os.getpid()}\n")  # written when ready: the lab and tests wait for it
        sd_notify("READY=1\nSTATUS=running")
        watchdog = int(os.environ.get("WATCHDOG_USEC", "0")) / 2e6
        last_ping = 0.0
        try:
            while not self.stop_all.wait(0.5):
                if watchdog and time.monotonic() - last_ping > watchdog:
                    sd_notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                current = self.service.current()
                changed = (current.id if current else None) != self.live_revision
                if self.reload.is_set() or changed:
                    if self.reload.is_set():
                        holder.close()  # after a restore: hold the restored database, not the one set aside
                        holder = self.ctx.db.hold()
                    if self.reload.is_set() and self.web is not None:
                        # A reload (SIGHUP, e.g. after a restore) also restarts the web UI process: it reads
                        # its certificate and cookie key at start. A revision change alone does not.
                        self.web.restart()
                    self.reload.clear()
                    self.stop_workers()
                    self.start_workers(self.reconcile() if not changed else self._adopt(current))
        finally:
            sd_notify("STOPPING=1")
            self.stop_all.set()
            self.stop_workers()
            for s in self.persistent:
                if s.thread:
                    s.thread.join(timeout=20)
            holder.close()  # the web UI has stopped with its worker: this is the last connection
            pidfile.unlink(missing_ok=True)
            os.close(lock)
        log.info("stopped")
        return 0

    def _adopt(self, rev) -> MamoriConfig | None:
        """A new revision was applied by the CLI or web UI (already live in the kernel): restart workers."""
        self.live_revision = rev.id if rev else None
        return parse_config(rev.config_text).model if rev else None


def run_daemon(ctx: Context) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return Daemon(ctx).run()
