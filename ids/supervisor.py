"""Run Suricata from the daemon: start it with the live files, restart it after a crash with back-off,
restart it when its YAML changes, stop it when the IDS is disabled, and publish a status.

Suricata runs in the daemon's network namespace (on the box: the root one; in the lab: the box namespace).
It is an IDS here, not inline: if it dies, traffic still flows and the firewall still blocks, so the
supervisor never touches the network. Rule-only changes do not come here: ids.subsystem reloads them
live over the unix socket without restarting capture.
Suricata runs as the `mamori-ids` account, never root (ids.account: it drops privileges itself once its
capture sockets are open). Where that account does not exist (a developer machine without `make setup`)
it runs as root as before, and the daemon logs that once.
Status (kv key `ids.suricata`): state starting/running/crashed/stopped/disabled, pid, the user it runs as,
since, restarts, last exit code and the last error lines Suricata printed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.clock import wall
from appliance.errors import MamoriError
from appliance.subsystem import Context
from ids import account, suricatasc
from ids.engine import SURICATA
from ids.render import SuricataPaths, suricata_argv
from ids.subsystem import sha, state_file

log = logging.getLogger(__name__)

# Suricata children of this process, by YAML path. The daemon restarts its workers on every config change;
# Suricata must survive that (capture is not interrupted, rules are reloaded live), so the supervisor leaves
# its child here when its worker stops, the next supervisor adopts it, and it is stopped at process exit.
_CHILDREN: dict[str, subprocess.Popen] = {}
_CHILDREN_LOCK = threading.Lock()
# One supervision step at a time in this process. A worker the daemon asked to stop may still be inside a step
# (it gives up waiting after a few seconds) while its successor runs: without this, both could start a Suricata.
_STEP_LOCK = threading.Lock()


def _terminate(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("Suricata (pid %d) ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait(timeout=10)


@atexit.register
def _stop_children() -> None:
    with _CHILDREN_LOCK:
        children = list(_CHILDREN.values())
        _CHILDREN.clear()
    for proc in children:
        _terminate(proc)


_LOGGED_NO_ACCOUNT = False


def _account() -> account.IdsAccount | None:
    global _LOGGED_NO_ACCOUNT
    found = account.lookup()
    if found is None and not _LOGGED_NO_ACCOUNT:
        _LOGGED_NO_ACCOUNT = True
        log.warning("no %s account on this machine (make setup creates it): Suricata runs as root",
                    account.IDS_ACCOUNT)  # fmt: skip
    return found


def _kill_orphan(pidfile: Path, yaml_path: Path) -> None:
    """A Suricata left running by a daemon that was killed: ours if its command line names our YAML."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return
    if str(yaml_path).encode() not in cmdline:
        return
    log.warning("stopping Suricata pid %d left by a previous daemon", pid)
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


STATUS_KEY = "ids.suricata"
STABLE_AFTER = 60.0  # a run this long resets the back-off


@dataclass
class SuricataStatus:
    state: str = "stopped"
    pid: int | None = None
    user: str = ""
    since: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    last_error: str = ""
    yaml_sha: str = ""
    history: list[float] = field(default_factory=list)


def read_status(ctx: Context) -> SuricataStatus:
    text = ctx.db.get_kv(STATUS_KEY)
    if not text:
        return SuricataStatus()
    try:
        return SuricataStatus(**json.loads(text))
    except (ValueError, TypeError):
        log.warning("unreadable Suricata status in kv; showing it as stopped")
        return SuricataStatus()


class SuricataSupervisor:
    """A daemon Worker. `run(stop)` loops until stop is set; one Suricata child at a time."""

    name = "ids-suricata"

    def __init__(
        self, ctx: Context, *, min_backoff: float = 1.0, max_backoff: float = 60.0, tick: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.ctx = ctx
        self.live = SuricataPaths.under(ctx.paths.run_dir)
        self.min_backoff, self.max_backoff, self.tick = min_backoff, max_backoff, tick
        self.clock = clock
        self.status = read_status(ctx)
        with _CHILDREN_LOCK:
            self.child: subprocess.Popen | None = _CHILDREN.get(str(self.live.yaml))
        if self.child is None or self.child.poll() is not None:
            self.child = None
            self.status.state, self.status.pid = "stopped", None
        self._backoff = min_backoff
        self._next_start = 0.0
        self._started_mono = 0.0

    # -- helpers -----------------------------------------------------------------------------------------
    def _publish(self) -> None:
        self.ctx.db.set_kv(STATUS_KEY, json.dumps(asdict(self.status), ensure_ascii=False))

    def _wanted(self) -> bool:
        if not self.live.yaml.exists():
            return False
        try:
            return bool(json.loads(state_file(self.live).read_text()).get("enabled", True))
        except FileNotFoundError:
            return True
        except ValueError:
            log.warning("unreadable %s; running Suricata", state_file(self.live))
            return True

    def _yaml_sha(self) -> str:
        try:
            return sha(self.live.yaml.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ""

    def _start(self) -> None:
        runs_as = _account()
        account.prepare(self.live, runs_as)
        _kill_orphan(self.live.pidfile, self.live.yaml)
        legacy_socket = self.live.base / "suricata.socket"  # before Suricata had its own account
        for stale in (self.live.pidfile, self.live.socket, legacy_socket):
            stale.unlink(missing_ok=True)
        argv = suricata_argv(SURICATA, self.live, *((runs_as.user, runs_as.group) if runs_as else ()))
        out = open(self.live.console_log, "ab")
        try:
            self.child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        with _CHILDREN_LOCK:
            _CHILDREN[str(self.live.yaml)] = self.child
        self._started_mono = self.clock()
        self.status.state, self.status.pid, self.status.since = "starting", self.child.pid, wall()
        self.status.user = runs_as.user if runs_as else "root"
        self.status.yaml_sha = self._yaml_sha()
        log.info("Suricata started (pid %d, as %s)", self.child.pid, self.status.user)
        self._publish()

    def _stop_child(self, state: str, timeout: float = 30.0) -> None:
        if self.child is None:
            if self.status.state != state:
                self.status.state, self.status.pid = state, None
                self._publish()
            return
        self._unregister()
        _terminate(self.child, timeout)
        self.status.last_exit = self.child.returncode
        self.child = None
        self.status.state, self.status.pid = state, None
        self._publish()

    def _last_errors(self) -> str:
        try:
            with open(self.live.console_log, "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 8192))
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join([ln for ln in lines if ln.startswith("E:")][-3:])[:2000]

    def _on_exit(self, code: int) -> None:
        ran = self.clock() - self._started_mono
        self._backoff = self.min_backoff if ran >= STABLE_AFTER else min(self.max_backoff, self._backoff * 2)
        self._next_start = self.clock() + self._backoff
        self._unregister()
        self.child = None
        self.status.state, self.status.pid, self.status.last_exit = "crashed", None, code
        self.status.restarts += 1
        self.status.history = [*self.status.history[-9:], wall()]
        self.status.last_error = self._last_errors()
        log.error("Suricata exited with %s after %.1f s; restarting in %.1f s", code, ran, self._backoff)
        self._publish()

    def _check_running(self) -> None:
        assert self.child is not None
        code = self.child.poll()
        if code is not None:
            self._on_exit(code)
            return
        if self.status.state == "starting" and self.live.socket.exists():
            try:
                suricatasc.command(self.live.socket, "uptime", timeout=5)
            except MamoriError:
                return
            self.status.state = "running"
            self._publish()
        elif self._yaml_sha() != self.status.yaml_sha:
            log.info("Suricata's configuration changed; restarting it")
            self._stop_child("stopped")

    def _unregister(self) -> None:
        """Forget this supervisor's child in the registry, but never a successor's: a stale supervisor must
        not hide the running Suricata from the next one (which would then start a second)."""
        with _CHILDREN_LOCK:
            if _CHILDREN.get(str(self.live.yaml)) is self.child:
                _CHILDREN.pop(str(self.live.yaml), None)

    def _follow_registry(self) -> None:
        """The registry says which Suricata is this box's: if another supervisor started or stopped one since
        this one last looked, take that over (and its published status) instead of acting on a stale child."""
        with _CHILDREN_LOCK:
            registered = _CHILDREN.get(str(self.live.yaml))
        if registered is not self.child:
            self.child = registered
            self.status = read_status(self.ctx)

    # -- the loop ----------------------------------------------------------------------------------------
    def step(self) -> None:
        """One supervision step (the loop body; tests call it directly)."""
        with _STEP_LOCK:
            self._follow_registry()
            self._step()

    def _step(self) -> None:
        if not self._wanted():
            if self.child is not None or self.status.state != "disabled":
                self._stop_child("disabled")
            return
        if self.child is not None:
            self._check_running()
        elif self.clock() >= self._next_start:
            self._start()

    def run(self, stop: threading.Event) -> None:
        """Loops until stop; Suricata keeps running for the next supervisor (see _CHILDREN)."""
        while not stop.is_set():
            self.step()
            stop.wait(self.tick)

    def shutdown(self) -> None:
        """Stop Suricata now (tests; the daemon relies on process exit)."""
        self._stop_child("stopped")

    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None


def wait_running(ctx: Context, timeout: float = 120.0) -> SuricataStatus:
    """Until the published status says running (tests, CLI `ids status --wait`)."""
    deadline = time.monotonic() + timeout
    status = read_status(ctx)
    while time.monotonic() < deadline:
        status = read_status(ctx)
        if status.state == "running":
            return status
        time.sleep(0.2)
    return status
