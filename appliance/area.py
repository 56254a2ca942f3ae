"""What an area tells the ground floor about itself, said once in its own `<area>/area.py`.

The ground floor (appliance/) never names an area: `appliance.areas` lists the areas' declarations, and
every registry — the CLI, the state database's migrations, the subsystems a config is applied to, the
daemon's workers, clock-step handlers, the config model's sections, the cross-section config checks,
retention and the web UI's pages — iterates that one list. Adding an area is its folder plus one line there.

Every hook is a string ("module" or "module:attribute") imported only when a registry needs it: reading
the list imports no Flask and no nftables, and an area's modules may import the ground floor without an
import circle. Non-goal: plugins found at run time — the list is fixed at build time, and every area
in it is always there.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Area:
    """One area's hooks; each is optional, a missing one means the area has no part in that registry."""

    name: str  # its name (the folder's, "backup" for appliance/backup); the key of its retention share
    # (config section, "module:Model"): the area's top-level sections of the config file, in file order
    config: tuple[tuple[str, str], ...] = ()
    # "module:function", function(cfg) -> [(field path, ja, en)]: errors that span sections, run after
    # the model validated (appliance.config.references)
    checks: tuple[str, ...] = ()
    # module with SCHEMA, its append-only migrations; the module's package is its key in schema_versions
    schema: str | None = None
    subsystems: str | None = None  # module with subsystems(ctx): what a config is applied to, in order
    workers: tuple[str, ...] = ()  # modules with daemon_workers(ctx, cfg): the daemon's threads
    clock_step: str | None = None  # module with on_clock_step(ctx, before, delta) (appliance.clockwatch)
    cli: str | None = None  # module with register(subparsers): `mamori <command> ...`
    blueprints: tuple[str, ...] = ()  # modules with bp, a Flask blueprint of the web UI
    # modules with ACTION_NAMES, whose handlers the daemon runs for the web UI (appliance.actions)
    actions: tuple[str, ...] = ()
    retention: str | None = None  # module with retain(db, policy) (appliance.retention)
    # module with before_web_start(ctx, account): what the daemon, as root, makes or opens to the web UI's
    # account (None: none exists) before each start of the web UI, which cannot write the key directory
    # itself (appliance.webserver, appliance.child_access)
    web_start: str | None = None
    retention_share: float = 0.0  # its share of storage.max_db_mb


def load(ref: str) -> Any:
    """The object a hook names: "pkg.module" is the module, "pkg.module:attr" an attribute of it."""
    module, _, attr = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded
