"""Each area declares itself once (issue 16.3): `<area>/area.py` holds its `AREA`, `appliance.areas` lists the
areas, and every registry of the ground floor is a view of that list.

What is proven here: (a) no module of the ground floor (appliance/) imports an area, except the composition
module; (b) every package with an area.py is listed there, and every hook an area declares exists and lives in
its own folder; (c) each registry — CLI commands, migrations, subsystems, workers, clock-step handlers, config
sections, cross-section checks, retention shares, web pages — is exactly what the areas declare, and the
behaviour the move must not change (apply order, migration keys, commands, pages, sections) is pinned.
"""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance import areas
from appliance.area import Area, load

REPO = Path(__file__).resolve().parents[2]
AREA_PACKAGES = {m.removesuffix(".area") for m in areas.AREA_MODULES}
NOT_PRODUCT = {"tests", "bench", "scripts", "lab", "image", "examples", "docs", "out", "fleet"}


def _area_of(module: str) -> str | None:
    return next((p for p in AREA_PACKAGES if module == p or module.startswith(p + ".")), None)


def ground_floor_imports(root: Path = REPO) -> set[tuple[str, str]]:
    """(file, module) for every import of an area by a module of appliance/ outside an area's own folder
    (appliance/backup is an area) and outside the composition module, function-level imports included."""
    found: set[tuple[str, str]] = set()
    for path in sorted((root / "appliance").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        owner = _area_of(rel.removesuffix(".py").replace("/", "."))
        if owner is not None or rel == "appliance/areas.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            found.update((rel, n) for n in names if _area_of(n))
    return found


def test_ground_floor_imports_no_area():
    """No exceptions: shared machinery that serves an area gets what it needs handed in by that area (the
    notification folding gets the IDS's incidents from ids.daemon, appliance.notify.folding.News)."""
    assert ground_floor_imports() == set()


def test_the_scan_sees_an_import_of_an_area(tmp_path):
    """The scanner itself: imports of areas inside functions are found; the composition module, an area's
    own folder and the ground floor's own modules are not reported."""
    (tmp_path / "appliance" / "backup").mkdir(parents=True)
    (tmp_path / "appliance" / "x.py").write_text(
        "import os\n\ndef f():\n    from vpn.lines import line_issues\n"
    )
    (tmp_path / "appliance" / "y.py").write_text("import firewall.sets\nfrom appliance import clock\n")
    (tmp_path / "appliance" / "areas.py").write_text("import ids.area\n")
    (tmp_path / "appliance" / "backup" / "z.py").write_text("from appliance.backup import store\n")
    assert ground_floor_imports(tmp_path) == {
        ("appliance/x.py", "vpn.lines"),
        ("appliance/y.py", "firewall.sets"),
    }


def test_every_area_py_is_listed_once():
    declared = set()
    for path in [
        *REPO.glob("*/area.py"),
        *REPO.glob("*/*/area.py"),
    ]:  # an area is a folder, or one in appliance/
        rel = path.relative_to(REPO)
        if rel.parts[0] in NOT_PRODUCT or rel.parts[0].startswith("."):
            continue
        if rel.as_posix() == "appliance/area.py":  # the Area dataclass itself, not a declaration
            continue
        declared.add(".".join(rel.with_suffix("").parts))
    assert declared == set(areas.AREA_MODULES)
    assert len(areas.AREA_MODULES) == len(set(areas.AREA_MODULES))
    names = [a.name for a in areas.AREAS]
    assert len(names) == len(set(names))


# What each kind of hook must offer once imported.
EXPECTED = {"schema": "SCHEMA", "subsystems": "subsystems", "workers": "daemon_workers",
            "clock_step": "on_clock_step", "cli": "register", "blueprints": "bp", "retention": "retain",
            "actions": "ACTION_NAMES", "web_start": "before_web_start"}  # fmt: skip


@pytest.mark.parametrize("module", areas.AREA_MODULES)
def test_each_hook_exists_in_the_areas_own_folder(module):
    area: Area = load(module + ":AREA")
    package = module.removesuffix(".area")
    refs = [ref for kind in EXPECTED for ref in areas.hooks_of(area, kind)]
    refs += [ref for _, ref in area.config] + list(area.checks)
    assert refs, f"{package} declares nothing"
    for ref in refs:
        assert ref.startswith(package + "."), f"{ref}: an area's hooks live in its own folder"
    for kind, attr in EXPECTED.items():
        for ref in areas.hooks_of(area, kind):
            assert hasattr(load(ref), attr), f"{ref} has no {attr}"
    for section, ref in area.config:
        assert issubclass(load(ref), BaseModel), section
    for ref in area.checks:
        assert list(inspect.signature(load(ref)).parameters) == ["cfg"], ref
    assert (area.retention is None) == (area.retention_share == 0.0)


def test_cli_commands_are_the_areas():
    from appliance.cli import build_parser

    core = {"config", "audit", "daemon", "status", "version"}
    by_area: dict[str, set[str]] = {}
    for area in areas.AREAS:
        if area.cli:
            sub = argparse.ArgumentParser().add_subparsers()
            load(area.cli).register(sub)
            by_area[area.name] = set(sub.choices)
    everything = [c for cmds in by_area.values() for c in cmds]
    assert len(everything) == len(set(everything)), "two areas register one command"
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == core | set(everything)
    # the commands there were before the areas declared themselves (issue 16.3 changes none)
    assert set(everything) == {"fw", "ids", "vpn", "backup", "report", "time", "ssh", "tls", "setup-code",
                               "metrics", "mgmt", "siem", "fleet", "update"}  # fmt: skip


def test_apply_order_and_migration_keys_are_unchanged(tmp_path):
    from appliance.storage import SCHEMA_MODULES, Database
    from appliance.subsystems import SUBSYSTEM_MODULES

    assert SUBSYSTEM_MODULES == tuple(areas.hooks("subsystems")) == (
        "appliance.network", "firewall.subsystem", "timesvc.subsystem", "sshsvc.subsystem", "ids.subsystem",
        "vpn.subsystem", "mgmt.subsystem", "siem.subsystem",
    )  # fmt: skip
    assert SCHEMA_MODULES == tuple(areas.hooks("schema"))
    # schema_versions rows of boxes in the field are keyed so: a key that changed would re-run migrations
    assert set(Database(tmp_path / "m.db").migrate()) == {
        "appliance", "firewall", "ids", "vpn", "webui", "appliance.backup", "reports", "appliance.notify",
        "siem", "fleetapi",
    }  # fmt: skip


def test_workers_clock_steps_and_retention_are_the_areas():
    from appliance import daemon, retention

    assert set(daemon.WORKER_MODULES) == set(areas.hooks("workers")) == {
        "firewall.daemon", "ids.daemon", "vpn.daemon", "appliance.backup.daemon", "reports.daemon",
        "timesvc.daemon", "sshsvc.daemon", "webui.tls_renew", "appliance.retention", "metrics.daemon",
        "mgmt.daemon", "siem.daemon", "update.daemon",
    }  # fmt: skip
    assert (
        [name for name, _ in daemon.clock_step_handlers()]
        == areas.hooks("clock_step")
        == ["firewall.clockstep", "vpn.clockstep", "webui.clockstep"]
    )
    assert retention.SHARES == {a.name: a.retention_share for a in areas.AREAS if a.retention}
    assert set(retention.SHARES) == {
        "ids",
        "firewall",
        "vpn",
        "appliance",
        "webui",
        "reports",
        "backup",
        "fleetapi",
    }
    assert sum(retention.SHARES.values()) == pytest.approx(1.0)


def test_config_sections_are_the_grounds_and_the_areas():
    from appliance.config.model import GroundSections, MamoriConfig

    ground = list(GroundSections.model_fields)
    declared = [section for a in areas.AREAS for section, _ in a.config]
    assert list(MamoriConfig.model_fields) == ground + declared + ["notifications", "web", "storage"]
    assert len(set(MamoriConfig.model_fields)) == len(MamoriConfig.model_fields)
    for area in areas.AREAS:
        for section, ref in area.config:
            assert MamoriConfig.model_fields[section].annotation is load(ref)
    assert set(MamoriConfig.model_fields) == {
        "schema_version", "clinic", "interfaces", "hosts", "groups", "services", "firewall", "dhcp", "ids",
        "vpn", "notifications", "web", "backup", "ntp", "ssh", "metrics", "mgmt", "siem", "fleet", "update",
        "storage",
    }  # fmt: skip


def test_an_areas_check_runs_when_the_config_is_checked():
    """references.check_references runs every area's checks: here the relay needing the management link."""
    import yaml

    from appliance.config.load import parse_config
    from appliance.errors import ConfigError

    data = yaml.safe_load((REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"))
    data["vpn"].update(path="relay", relay_endpoint="198.51.100.1:51821")
    data.pop("mgmt", None)
    with pytest.raises(ConfigError) as err:
        parse_config(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    assert "vpn.path: the relay path needs the management link" in err.value.text("en")


def test_web_pages_are_the_areas(tmp_path):
    from tests.webui_fixtures import make_box

    app = make_box(tmp_path).app
    declared = {load(ref).bp.name for ref in areas.hooks("blueprints")}
    assert declared == {"reports", "mgmt", "fleetweb", "fleetapi", "update"}
    own = {
        "auth",
        "setup",
        "dashboard",
        "alerts",
        "firewall",
        "vpn",
        "devices",
        "settings",
        "auditlog",
        "accounts",
    }
    assert set(app.blueprints) == own | declared
