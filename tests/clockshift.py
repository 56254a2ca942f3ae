"""Run `mamori ARGS` with a wall clock that a test can step while the process runs (lab tests only).

    python -m tests.clockshift OFFSET_FILE ARGS...

The file holds an offset in seconds from the real time (`+7200`, `-3600`); a thread re-reads it every 0.2 s and
shifts the clock by the difference (time-machine: `time.time`, `datetime.now`, ... of this process). Monotonic
time stays real, as on a box whose wall clock NTP steps; the machine's own clock is never touched. Processes the
daemon starts (chronyd, dnsmasq, the web UI) keep the real time.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import time_machine


def _offset(path: Path, default: int) -> int:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):  # being rewritten: keep the last offset
        return default


def _follow(path: Path, traveller: time_machine.Traveller, applied: int) -> None:
    while True:
        wanted = _offset(path, applied)
        if wanted != applied:
            traveller.shift(wanted - applied)
            applied = wanted
        time.sleep(0.2)  # not moved by time-machine


def main() -> int:
    path = Path(sys.argv[1])
    offset = _offset(path, 0)
    traveller = time_machine.travel(time.time() + offset, tick=True).start()
    threading.Thread(target=_follow, args=(path, traveller, offset), name="clockshift", daemon=True).start()
    from appliance.cli import main as mamori

    return mamori(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
