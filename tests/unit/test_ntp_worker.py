"""The chronyd worker's decisions: its command line, that it adopts only a process that really is our
chronyd (a stale state file naming some other PID is ignored, never signalled), and (as root) that it
prepares chronyd's directory with the capabilities the box's daemon has."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from timesvc.render import conf_path
from timesvc.worker import OWNER_FILE, ChronyWorker, chronyd_argv, prune_stale_dirs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "argv_tail"),
    [
        ("# set_clock: yes\nserver 198.51.100.10 iburst\n", ["-f", "/r/chrony.conf"]),
        ("# set_clock: no\nserver 198.51.100.10 iburst\n", ["-f", "/r/chrony.conf", "-x"]),
        ("server 198.51.100.10 iburst\n", ["-f", "/r/chrony.conf"]),  # no marker: the appliance default
    ],
)
def test_argv_follows_the_file(text: str, argv_tail: list[str]) -> None:
    argv = chronyd_argv(Path("/r/chrony.conf"), text, "_chrony")
    assert argv[:4] == ["chronyd", "-d", "-u", "_chrony"] and argv[4:] == argv_tail


def _worker(tmp_path: Path) -> ChronyWorker:
    paths = Paths(config=tmp_path / "c.yaml", state_dir=tmp_path)
    paths.ensure()
    return ChronyWorker(Context(paths, Database(paths.db)))


def test_no_config_starts_nothing(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    assert worker.step() == worker.poll and worker.pid is None
    assert not (tmp_path / "run" / "chrony.state").exists()


def test_stale_state_naming_another_process_is_not_adopted(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    worker.state_file.write_text(json.dumps({"pid": os.getpid(), "hash": "x"}), encoding="utf-8")
    worker._adopt(conf_path(worker.ctx.paths))
    assert worker.pid is None  # this test process is not chronyd: never adopted, never killed
    worker.state_file.write_text("{not json", encoding="utf-8")
    worker._adopt(conf_path(worker.ctx.paths))
    assert worker.pid is None
    worker.shutdown()  # nothing to stop


def test_prune_removes_only_our_dirs_of_vanished_state_dirs(tmp_path: Path) -> None:
    root = tmp_path / "run-mamori"
    gone, alive, foreign = root / "chrony-aaa", root / "chrony-bbb", root / "chrony-ccc"
    for d in (gone, alive, foreign):
        d.mkdir(parents=True)
    (gone / OWNER_FILE).write_text(str(tmp_path / "deleted-state"), encoding="utf-8")
    (alive / OWNER_FILE).write_text(str(tmp_path), encoding="utf-8")
    assert prune_stale_dirs(root) == 1
    assert not gone.exists() and alive.exists() and foreign.exists()  # no owner file: not ours, kept


def test_without_chrony_installed_nothing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A box image without the chrony package still applies its config (the firewall must come up); the
    clock's state then says the time service is not running."""
    from timesvc.status import clock_state
    from timesvc.subsystem import chrony_parse_check

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    chrony_parse_check("server 198.51.100.10 iburst\n")  # no chronyd: logged, not an apply failure
    worker = _worker(tmp_path)
    conf_path(worker.ctx.paths).write_text("# set_clock: no\nserver 198.51.100.10 iburst\n", encoding="utf-8")
    assert worker.step() == 30.0 and worker.pid is None and worker.missing_logged
    state = clock_state(worker.ctx)
    assert (state.enabled, state.running, state.problem) == (True, False, "chrony is not installed")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not _has_user("_chrony"),
    reason="needs root, setpriv (util-linux) and chrony's _chrony account",
)
def test_the_directory_is_prepared_without_cap_fowner_again_and_again(tmp_path: Path) -> None:
    """The box's daemon runs without CAP_FOWNER (image/systemd/mamori.service): preparing chronyd's
    directory, at the first start and at every restart after, must not need it (it did: chronyd never ran)."""
    directory = tmp_path / "chrony-x"
    code = (
        "import sys; from pathlib import Path; from timesvc.worker import _prepare_dir;"
        " print(_prepare_dir(Path(sys.argv[1])))"
    )
    for _ in range(2):
        run = subprocess.run(
            ["setpriv", "--bounding-set", "-fowner", sys.executable, "-c", code, str(directory)],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 0 and run.stdout.strip() == "_chrony", run.stderr
        st = directory.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam("_chrony").pw_uid, 0o750)
