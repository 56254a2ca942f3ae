"""lab.running: a lab comes up whole or is torn down again; a held demo always cleans up."""

from __future__ import annotations

import signal

import pytest

from lab.running import BuiltWhole, hold


class Thing(BuiltWhole):
    def __init__(self, fail: bool) -> None:
        self.fail, self.made, self.downs = fail, [], 0

    def _build(self) -> None:
        self.made.append("namespace")
        if self.fail:
            raise RuntimeError("veth refused")

    def down(self) -> None:
        self.downs += 1
        self.made.clear()


def test_up_returns_itself_when_built() -> None:
    thing = Thing(fail=False)
    assert thing.up() is thing and thing.made == ["namespace"] and thing.downs == 0


def test_a_failure_part_way_tears_down_what_was_made_and_goes_on() -> None:
    thing = Thing(fail=True)
    with pytest.raises(RuntimeError, match="veth refused"):
        thing.up()
    assert thing.made == [] and thing.downs == 1


def test_hold_stops_after_the_time_and_cleans_up_even_when_start_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGINT)
    stopped: list[str] = []
    assert hold(lambda: None, lambda: stopped.append("down"), exit_after=0.01) == 0
    assert stopped == ["down"] and "終了しました / done" in capsys.readouterr().out

    def broken() -> None:
        raise RuntimeError("no wireguard-go")

    with pytest.raises(RuntimeError):
        hold(broken, lambda: stopped.append("down"), exit_after=0.01)
    assert stopped == ["down", "down"]
    assert signal.getsignal(signal.SIGINT) is before  # the caller's Ctrl-C handler is back
