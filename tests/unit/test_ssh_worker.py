"""The sshd worker's decisions that need no root: its command line, that it recognises sshd by the title
sshd rewrites itself to, and that a stale state file naming another process is never adopted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from sshsvc.render import conf_path
from sshsvc.worker import SshdWorker, sshd_argv


def _worker(tmp_path: Path) -> SshdWorker:
    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path)
    paths.ensure()
    return SshdWorker(Context(paths, Database(paths.db)))


def test_argv_runs_sshd_in_the_foreground_by_absolute_path() -> None:
    assert sshd_argv(Path("/s/run/ssh/sshd_config")) == [
        "/usr/sbin/sshd",
        "-D",
        "-e",
        "-f",
        "/s/run/ssh/sshd_config",
    ]


def test_recognises_sshd_before_and_after_it_rewrites_its_title(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    conf = conf_path(worker.ctx.paths)
    fresh = [b"/usr/sbin/sshd", b"-D", b"-e", b"-f", str(conf).encode()]
    titled = [f"sshd: /usr/sbin/sshd -D -e -f {conf} [listener] 0 of 10-100 startups".encode()]
    assert worker.cmdline_is_ours(fresh, conf) and worker.cmdline_is_ours(titled, conf)
    other_box = [f"sshd: /usr/sbin/sshd -D -e -f {conf}.other [listener] 0 of 10-100 startups".encode()]
    debian = [b"sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"]
    session = [b"sshd: root@pts/0"]
    assert not any(worker.cmdline_is_ours(c, conf) for c in (other_box, debian, session, []))


def test_no_config_starts_nothing_and_stale_state_is_not_adopted(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    assert worker.step() == worker.poll and worker.pid is None
    worker.state_file.write_text(json.dumps({"pid": os.getpid(), "hash": "x"}), encoding="utf-8")
    worker._adopt(conf_path(worker.ctx.paths))
    assert worker.pid is None  # this test process is not our sshd: never adopted, never killed
    worker.shutdown()
