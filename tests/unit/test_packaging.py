"""Every product package ships in the wheel the image is built from, and nothing for development does.

Why: the image installs Mamori from a wheel of this repository, and setuptools packs what
`[tool.setuptools.packages.find]` finds. It once listed the packages by name, and a new area folder left out
of that list worked in the source tree and in every test and failed only when the image build imported it
(this happened with siem/). Now it finds every top-level package except `exclude`; these tests run the same
search setuptools runs, so a folder that would not ship (no __init__.py, or excluded) fails here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, find_packages

from appliance import areas

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", "bench"}  # development only: never imported by the product


def shipped_packages(repo: Path = ROOT) -> list[str]:
    """The packages the wheel holds: pyproject's packages.find, run as setuptools runs it."""
    find = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "packages"
    ]
    opts = find["find"]
    search = find_namespace_packages if opts.get("namespaces", True) else find_packages
    return sorted(
        search(where=str(repo), include=opts.get("include", ["*"]), exclude=opts.get("exclude", []))
    )


def test_every_area_and_the_ground_floor_ship() -> None:
    shipped = set(shipped_packages())
    for module in (*areas.AREA_MODULES, *(a.schema for a in areas.GROUND if a.schema)):
        package = module.rsplit(".", 1)[0]
        assert package in shipped, f"{package} ({module}) would not be in the wheel"
    assert {"appliance", "appliance.config", "appliance.notify", "webui.views", "lab"} <= shipped


def test_every_top_level_package_ships_and_development_ones_do_not() -> None:
    shipped = set(shipped_packages())
    top = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert top - NOT_SHIPPED <= shipped
    assert not {p for p in shipped if p.split(".")[0] in NOT_SHIPPED}, "tests or benchmarks would ship"
    # only real packages: folders without __init__.py (docs, image, out, fleet/ansible ...) are not packed
    assert all((ROOT / p.replace(".", "/") / "__init__.py").exists() for p in shipped)


def test_every_file_of_a_shipped_package_is_packed() -> None:
    """Data files go in by package-data patterns: one the patterns miss is missing on the box only (the
    password check's webui/common_passwords.txt was)."""
    import subprocess

    setuptools_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    patterns = setuptools_cfg["package-data"]["*"]
    shipped = shipped_packages()
    covered: set[Path] = set()
    for package in shipped:
        folder = ROOT / package.replace(".", "/")
        covered |= set(folder.glob("*.py"))
        for pattern in patterns:
            covered |= {p for p in folder.glob(pattern) if p.is_file()}
    tops = {p.split(".")[0] for p in shipped}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = [ROOT / t for t in tracked.split() if t.split("/")[0] in tops and (ROOT / t).is_file()]
    assert len(files) > 300
    assert [str(f.relative_to(ROOT)) for f in files if f not in covered] == []
