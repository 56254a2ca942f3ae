"""lab.waiting: the one polling helper of the lab and its tests is bounded in time and in count."""

from __future__ import annotations

import time

import pytest

from lab.waiting import wait_for, wait_or_fail


def test_returns_the_first_truthy_answer() -> None:
    answers = iter([None, [], ["incident"], ["later"]])
    assert wait_for(lambda: next(answers), timeout=5, step=0.01) == ["incident"]


def test_gives_up_after_the_timeout_with_the_last_falsy_answer() -> None:
    start = time.monotonic()
    assert wait_for(lambda: 0, timeout=0.2, step=0.05) == 0
    assert time.monotonic() - start < 2


def test_bounded_in_count_even_when_each_call_is_instant() -> None:
    calls: list[None] = []
    wait_for(lambda: calls.append(None), timeout=0.3, step=0.1)
    assert 2 <= len(calls) <= 5  # three polls and the last look, give or take one on a slow machine


def test_a_slow_predicate_is_not_called_long_after_the_deadline() -> None:
    calls: list[None] = []

    def slow() -> bool:
        calls.append(None)
        time.sleep(0.15)
        return False

    assert wait_for(slow, timeout=0.3, step=0.01) is False
    assert len(calls) <= 4


def test_wait_or_fail_says_what_did_not_happen() -> None:
    with pytest.raises(AssertionError, match=r"the tunnel came up: not within 0.1 s .*last answer ''"):
        wait_or_fail(lambda: "", 0.1, "the tunnel came up", step=0.02)
    assert wait_or_fail(lambda: 7, 1, "seven") == 7
