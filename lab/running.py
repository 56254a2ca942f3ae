"""Bringing a lab up and keeping it up: built whole or torn down again, then held until Ctrl-C (`make demo`,
`make fleet-demo`). Both demos and both lab shapes (lab.topology.Lab, lab.fleet.Fleet) had their own copy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Self


class BuiltWhole:
    """A lab thing that comes up whole or not at all: a failure part-way (or Ctrl-C) tears down what was
    already made, so no namespace, interface or process is left behind, and the error goes on."""

    def _build(self) -> None:
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def up(self) -> Self:
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self


def need_root(target: str) -> bool:
    """True when run as root (network namespaces need it); otherwise say so and return False."""
    if os.geteuid() == 0:
        return True
    print(f"make {target} needs root (network namespaces). / root で実行してください。", file=sys.stderr)
    return False


def hold(start: Callable[[], None], stop: Callable[[], None], exit_after: float | None) -> int:
    """Run `start` (build, print where to look), then wait for Ctrl-C, SIGTERM or `exit_after` seconds
    (tests); `stop` always runs, also when `start` failed half-way."""
    stopped = threading.Event()
    before = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        start()
        stopped.wait(exit_after)
    finally:
        print("片付けています… / cleaning up…", flush=True)
        try:
            stop()
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
    print("終了しました / done")
    return 0
