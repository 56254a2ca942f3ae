"""Shared fixtures: the lab (a clinic of network namespaces) and a Mamori box running in it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.box import Box, make_box
from lab.topology import Lab

REPO = Path(__file__).resolve().parent.parent
ET_OPEN = REPO.parent / "shared" / "data" / "et-open-2024-04"


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
