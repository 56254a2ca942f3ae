"""Supervisor bookkeeping with a fake clock: exponential back-off after quick crashes, reset after a stable
run, the published status, and `wanted` from the state file. (Running the real Suricata: see
tests/integration/test_ids_reload.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
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
