"""The state disk's level and words (appliance.disk), `mamori status` (appliance.status), and a config change on a
full disk refused before anything is applied (ConfigService)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance import disk
from appliance.cli import main
from appliance.disk import DiskFullError, DiskState, disk_state
from appliance.service import ConfigService
from appliance.subsystem import Context
from tests.webui_fixtures import box_fixture  # noqa: F401  (fixture)

MIB = 1 << 20
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("total", "free", "level", "words"),
    [
        (1000 * MIB, 500 * MIB, "ok", "50% 使用中"),
        (1000 * MIB, 95 * MIB, "warn", "残りわずか"),
        (1000 * MIB, 7 * MIB, "full", "いっぱいです"),
        (40 * MIB, 0, "full", "通信の遮断は続いています"),
    ],
)
def test_levels_and_japanese_words(total: int, free: int, level: str, words: str) -> None:
    state = DiskState("/var/lib/mamori", total, free)
    assert state.level == level and words in state.text_ja()
    assert ("full" in state.text_en()) is (level == "full")


def test_disk_state_measures_the_real_file_system(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    state = disk_state(tmp_path)
    assert state.total == st.f_blocks * st.f_frsize and 0 <= state.free <= state.total


def test_a_change_on_a_full_disk_is_refused_before_any_engine_runs(ctx: Context, monkeypatch) -> None:
    class Engine:
        name, applied = "engine", 0

        def render(self, model, previous=None):
            return model

        def check(self, rendered) -> None:
            pass

        def apply(self, rendered) -> None:
            Engine.applied += 1

    monkeypatch.setattr(
        disk, "FULL_FREE_BYTES", disk_state(ctx.paths.state_dir).free + MIB
    )  # this disk is "full"
    svc = ConfigService(ctx, subsystems=[Engine()])  # type: ignore[list-item]
    with pytest.raises(DiskFullError) as err:
        svc.apply((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"), "院長", "cli")
    assert "何も変わっていません" in err.value.text("ja") and Engine.applied == 0
    assert svc.current() is None and not ctx.paths.config.exists()


def test_mamori_status_without_a_daemon_says_so_and_exits_1(tmp_path: Path, capsys) -> None:
    state = tmp_path / "state"
    code = main(["--config", str(tmp_path / "c.yaml"), "--state-dir", str(state), "status"])
    out = capsys.readouterr().out
    assert code == 1 and "常駐プロセス: 止まっています" in out and "設定: まだ反映されていません" in out
    assert "記録用のディスク" in out
    code = main(["--lang", "en", "--config", str(tmp_path / "c.yaml"), "--state-dir", str(state), "status"])
    assert code == 1 and "daemon: not running" in capsys.readouterr().out


def test_the_dashboard_says_when_the_disk_is_full_and_when_the_clock_stepped(box, monkeypatch) -> None:
    from appliance.clockwatch import ClockWatch
    from appliance.daemon import clock_step_handlers

    client = box.client()
    box.login(client, "staff")
    page = client.get("/").get_data(as_text=True)
    assert "記録用のディスク" not in page and "時計が" not in page
    monotonic = iter(range(1000, 2000)).__next__
    watch = ClockWatch(
        box.ctx, clock_step_handlers(), wall=lambda: box.clock.now, mono=lambda: float(monotonic())
    )
    watch.tick()
    box.clock.advance(3 * 3600)  # the wall clock moves 3 h while the monotonic one moves 1 s
    watch.tick()  # the staff's session moves with the step: still signed in
    monkeypatch.setattr(disk, "FULL_FREE_BYTES", disk_state(box.ctx.paths.state_dir).free + MIB)
    page = client.get("/").get_data(as_text=True)
    assert "記録用のディスクがいっぱいです" in page and "時計が 3 時間 進みました" in page
