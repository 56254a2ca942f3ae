"""Supervisor bookkeeping with a fake clock: exponential back-off after quick crashes, reset after a stable
run, the published status, and `wanted` from the state file. (Running the real Suricata: see
tests/integration/test_ids_reload.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from ids import supervisor
from ids.render import SuricataPaths
from ids.supervisor import SuricataSupervisor, read_status


def make(tmp_path: Path, now: list[float]) -> tuple[SuricataSupervisor, Context]:
    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path / "s")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    ctx = Context(paths, db)
    return SuricataSupervisor(ctx, min_backoff=1, max_backoff=8, clock=lambda: now[0]), ctx


def test_backoff_doubles_then_resets(tmp_path: Path) -> None:
    now = [100.0]
    sup, ctx = make(tmp_path, now)
    waits = []
    for _ in range(5):
        sup._started_mono = now[0]
        now[0] += 2  # crashed after 2 s
        sup._on_exit(1)
        waits.append(sup._next_start - now[0])
    assert waits == [2, 4, 8, 8, 8]
    sup._started_mono = now[0]
    now[0] += 120  # a stable run
    sup._on_exit(0)
    assert sup._next_start - now[0] == 1
    st = read_status(ctx)
    assert st.state == "crashed" and st.restarts == 6 and st.last_exit == 0 and len(st.history) == 6


def test_wanted_follows_state_file(tmp_path: Path) -> None:
    sup, ctx = make(tmp_path, [0.0])
    live = SuricataPaths.under(ctx.paths.run_dir)
    assert not sup._wanted()  # nothing rendered yet
    live.base.mkdir(parents=True, exist_ok=True)
    live.yaml.write_text("%YAML 1.1\n---\n")
    assert sup._wanted()
    (live.base / "state.json").write_text(json.dumps({"enabled": False}))
    assert not sup._wanted()
    sup.step()
    assert read_status(ctx).state == "disabled"
    (live.base / "state.json").write_text("{broken")
    assert sup._wanted()  # unreadable: run rather than silently leave the clinic unwatched


def test_a_stale_supervisor_never_starts_a_second_suricata(tmp_path: Path, monkeypatch) -> None:
    """The daemon restarts its workers on every config change and gives up waiting for a slow one after a few
    seconds, so an old supervisor can still step while its successor runs. Only one Suricata may run: the old
    one must follow the registry, not act on the child it started before. (A sleeping process stands in for
    Suricata: this is the bookkeeping; tests/integration/test_ids_reload.py runs the real one.)"""
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(argv, **kwargs):  # type: ignore[no-untyped-def]
        proc = real_popen(["sleep", "60"], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(supervisor.subprocess, "Popen", popen)
    monkeypatch.setattr(supervisor, "_account", lambda: None)
    monkeypatch.setattr(supervisor.account, "prepare", lambda live, runs_as: None)
    now = [0.0]
    old, ctx = make(tmp_path, now)
    live = SuricataPaths.under(ctx.paths.run_dir)
    live.base.mkdir(parents=True, exist_ok=True)
    live.yaml.write_text("%YAML 1.1\n---\n# one\n")
    try:
        old.step()  # starts the first
        new = SuricataSupervisor(ctx, min_backoff=1, max_backoff=8, clock=lambda: now[0])
        assert new.child is started[0]
        live.yaml.write_text("%YAML 1.1\n---\n# two\n")
        new.step()  # the configuration changed: stops the first
        new.step()  # and starts the second
        for _ in range(3):
            now[0] += 100  # past any back-off
            old.step()
            new.step()
        running = [p for p in started if p.poll() is None]
        assert len(started) == 2 and running == [started[1]], [p.pid for p in started]
        assert old.child is new.child is started[1]
        assert read_status(ctx).pid == started[1].pid
    finally:
        for proc in started:
            proc.kill()
            proc.wait(5)
        supervisor._CHILDREN.clear()
