"""Waiting for something to become true, bounded in time and in count: the one polling helper of the lab and
its tests (it was copied into a dozen test files with small drifts in step and return value).

Not for waiting on a process to exit (Popen.wait has its own timeout) nor for speed targets (bench/).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, step: float = 0.2) -> T:
    """Call `predicate` every `step` seconds until it returns something truthy, and return that (a list of
    incidents, a PID, True). After `timeout` seconds, or timeout/step calls, whichever comes first, return
    its last (falsy) answer, so `assert wait_for(...), why` reads as the test means it."""
    deadline = time.monotonic() + timeout
    for _ in range(max(1, math.ceil(timeout / step))):
        value = predicate()
        if value:
            return value
        if time.monotonic() + step > deadline:
            break
        time.sleep(step)
    return predicate()


def wait_or_fail(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.2) -> T:
    """As wait_for, but a timeout fails with a message that says what did not happen, in how long, and
    the last answer seen (rather than pytest's `assert False` over a lambda)."""
    start = time.monotonic()
    value = wait_for(predicate, timeout, step)
    if not value:
        took = time.monotonic() - start
        raise AssertionError(f"{what}: not within {timeout:g} s (waited {took:.1f} s); last answer {value!r}")
    return value
