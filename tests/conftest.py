"""Shared fixtures: the lab (a clinic of network namespaces) and a Mamori box running in it."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import time_machine

from lab.box import Box, make_box
from lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
ET_OPEN = REPO.parent / "shared" / "data" / "et-open-2024-04"


def _test_now() -> dt.datetime | None:
    """The moment named by MAMORI_TEST_NOW (ISO 8601 with an offset), or None to run at the real time."""
    text = os.environ.get("MAMORI_TEST_NOW", "").strip()
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise pytest.UsageError(
            f"MAMORI_TEST_NOW needs a UTC offset, e.g. 2027-12-31T23:59:30+09:00 (got {text!r})"
        )
    return moment


def pytest_configure(config: pytest.Config) -> None:
    """MAMORI_TEST_NOW sends the whole run to another moment: the suite must not rot as the calendar turns.

    time-machine moves the wall clock of this process (time.time, datetime.now, ...) and lets it tick on from
    there; monotonic time is left alone, as on a box whose clock was stepped. Processes the tests start keep the
    real time, which is why the shifted runs are for tests/unit (CI runs them at a JST year end and a leap day).
    """
    moment = _test_now()
    if moment is not None:
        traveller = time_machine.travel(moment, tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    moment = _test_now()
    return f"MAMORI_TEST_NOW: the wall clock starts at {moment.isoformat()}" if moment else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0 and shutil.which("ip"):
        return
    skip = pytest.mark.skip(reason="integration tests need root and iproute2 (network namespaces)")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh clinic for one test; every namespace and process removed afterwards."""
    lab = Lab(f"mt{os.getpid()}x{next(_counter)}")
    with lab:
        yield lab


@pytest.fixture
def box(lab: Lab, tmp_path: Path) -> Box:
    """The lab's box with examples/clinic.yaml applied as revision 1 (no daemon running)."""
    b = make_box(lab, tmp_path / "state")
    b.mamori("config", "apply", "-m", "初期設定")
    return b
