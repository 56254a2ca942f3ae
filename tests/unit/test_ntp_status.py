"""Reading the clock's state from chronyc's CSV output (captured from chrony 4.3 in a namespace), with
malformed and hostile lines beside the real ones; and `mamori time status` when chronyd is off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from timesvc.render import conf_path
from timesvc.status import ClockState, Source, clock_state, format_offset_ja, parse_sources, parse_tracking

# Real output of `chronyc -n -c tracking` / `sources` (chrony 4.3), synchronised and not.
SYNCED = ("0A4D0001,10.77.0.1,9,1795658835.150629293,-0.000002107,0.000000131,0.000000248,-0.231,0.003,0.239,"
          "0.000009171,0.000001718,1.0,Normal\n")  # fmt: skip
UNSYNCED = ("00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,"
            "1.000000000,0.0,Not synchronised\n")  # fmt: skip
SOURCES_UNREACHABLE = (
    "^,?,10.77.0.1,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n"
    "^,?,10.77.0.9,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n"
)
SOURCES_SELECTED = "^,*,198.51.100.10,8,6,377,12,0.000000113,0.000000244,0.000004620\n"


def test_tracking_synchronised_offset_sign() -> None:
    t = parse_tracking(SYNCED)
    assert t is not None and t.stratum == 9 and t.leap == "Normal" and t.ref_name == "10.77.0.1"
    # chronyc printed "0.000002109 seconds fast of NTP time": positive = box clock ahead
    assert t.offset_s == pytest.approx(2.107e-6)


def test_tracking_unsynchronised() -> None:
    t = parse_tracking(UNSYNCED)
    assert t is not None and t.stratum == 0 and t.leap == "Not synchronised" and t.ref_id == "00000000"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage\n",
        "0A4D0001,10.77.0.1,nine,0,0,0,0,0,0,0,0,0,1.0,Normal\n",
        "a,b,c\n",
        SYNCED.replace(",", ";"),
    ],
)
def test_tracking_malformed_is_none(text: str) -> None:
    assert parse_tracking(text) is None


def test_sources_real_and_malformed_lines_counted() -> None:
    text = SOURCES_UNREACHABLE + "^,*,evil\n" + "^,*,x,notanumber,6,377,1,0,0,0\n" + SOURCES_SELECTED
    sources, bad = parse_sources(text)
    assert bad == 2
    assert [s.name for s in sources] == ["10.77.0.1", "10.77.0.9", "198.51.100.10"]
    assert sources[2] == Source("198.51.100.10", "*", 8, 0o377) and sources[2].selected
    assert not sources[0].selected and sources[0].reach == 0


@pytest.mark.parametrize(
    ("offset", "text"),
    [(0.0012, "1.200 ミリ秒進み"), (-0.0012, "1.200 ミリ秒遅れ"), (2.5, "2.500 秒進み"), (0.0, "0 ミリ秒")],
)
def test_offset_in_japanese(offset: float, text: str) -> None:
    assert format_offset_ja(offset) == text


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (ClockState(enabled=False, running=False), "無効"),
        (ClockState(enabled=True, running=False), "動いていません"),
        (ClockState(enabled=True, running=True), "同期していません"),
        (ClockState(enabled=True, running=True, synchronised=True, stratum=3, offset_s=-0.002,
                    upstream="198.51.100.10"), "同期済み（198.51.100.10、ずれ 2.000 ミリ秒遅れ、階層 3）"),
    ],
)  # fmt: skip
def test_summary(state: ClockState, words: str) -> None:
    assert words in state.summary_ja()


def ctx_at(tmp_path: Path) -> Context:
    paths = Paths(config=tmp_path / "config.yaml", state_dir=tmp_path)
    paths.ensure()
    return Context(paths, Database(paths.db))


def test_clock_state_without_chronyd(tmp_path: Path) -> None:
    ctx = ctx_at(tmp_path)
    assert clock_state(ctx) == ClockState(
        enabled=False, running=False, problem="ntp disabled (no chrony.conf)"
    )
    conf_path(ctx.paths).write_text("# set_clock: no\n", encoding="utf-8")
    state = clock_state(ctx)
    assert state.enabled and not state.running and not state.synchronised


def test_cli_status_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = ctx_at(tmp_path)
    conf_path(ctx.paths).write_text("# set_clock: no\n", encoding="utf-8")
    assert main(["--state-dir", str(tmp_path), "time", "status", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["enabled"] is True and data["running"] is False and data["synchronised"] is False
    assert main(["--state-dir", str(tmp_path), "time", "status"]) == 1
    assert "時刻サーバー（chronyd）が動いていません" in capsys.readouterr().out
    assert main(["--state-dir", str(tmp_path), "--lang", "en", "time", "status"]) == 1
    assert "chronyd is not running" in capsys.readouterr().out


def test_the_web_ui_reads_the_clock_state_of_this_module(tmp_path: Path) -> None:
    import timesvc
    from webui.views.settings_time import read_clock

    state = timesvc.clock_state(ctx_at(tmp_path))
    assert isinstance(state, ClockState) and state.synchronised is False
    view = read_clock(ctx_at(tmp_path))
    assert view.kind == ("stopped" if state.enabled else "disabled")  # said as it is, never "synced"
