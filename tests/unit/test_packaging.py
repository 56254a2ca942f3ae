"""Every product package ships in the wheel the image is built from.

Why: the image installs Mamori from a wheel of this repository, and setuptools only packs what
`[tool.setuptools.packages.find] include` names. A new area folder left out of that list works in the
source tree and in every test, and fails only when the image build imports it (this happened with siem/).
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", "bench"}  # development only: never imported by the product


def test_every_top_level_package_is_in_the_wheel() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_SHIPPED)
    assert "appliance" in packages
    missing = [name for name in packages if not any(fnmatch.fnmatch(name, pattern) for pattern in include)]
    assert missing == [], f"add these to pyproject.toml's packages.find include: {missing}"
