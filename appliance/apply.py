"""Applying a config to every engine, all or nothing.

Order of work: render every subsystem (pure) -> check every subsystem (the engines' own validators) ->
apply one by one (firewall first) -> verify each. If any step fails, every subsystem already applied
gets the previous config's rendering back (in reverse order), so the kernel and daemons end as they were.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError, MamoriError
from appliance.paths import Paths
from appliance.subsystem import Subsystem

log = logging.getLogger(__name__)


@contextmanager
def apply_lock(paths: Paths) -> Iterator[None]:
    """One apply at a time on a box: the CLI, the web UI, the daemon and the confirm timer all take it."""
    paths.ensure()
    with open(paths.state_dir / "apply.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def render_all(subsystems: Sequence[Subsystem], cfg: MamoriConfig) -> list[tuple[Subsystem, Any]]:
    return [(s, s.render(cfg)) for s in subsystems]


def check_all(rendered: list[tuple[Subsystem, Any]]) -> None:
    for subsystem, result in rendered:
        subsystem.check(result)


def apply_all(subsystems: Sequence[Subsystem], new: MamoriConfig, previous: MamoriConfig | None) -> None:
    """Make `new` live everywhere, or leave `previous` live everywhere and raise ApplyError."""
    rendered = render_all(subsystems, new)
    check_all(rendered)
    done: list[Subsystem] = []
    try:
        for subsystem, result in rendered:
            # Counted as touched before it runs: a subsystem that fails halfway is restored as well.
            done.append(subsystem)
            subsystem.apply(result)
        for subsystem, result in rendered:
            subsystem.verify(result)
    except MamoriError as exc:
        log.error("apply failed in %s: %s; restoring the previous state", getattr(subsystem, "name", "?"), exc)
        _restore(done, previous)
        if isinstance(exc, ApplyError):
            raise
        raise ApplyError(exc.text("ja"), exc.text("en"), code=exc.code) from exc


def _restore(done: list[Subsystem], previous: MamoriConfig | None) -> None:
    for subsystem in reversed(done):
        try:
            if previous is not None:
                subsystem.apply(subsystem.render(previous))
            elif hasattr(subsystem, "reset"):
                subsystem.reset()
        except MamoriError as exc:  # keep restoring the others; this one is reported loudly
            log.critical("could not restore %s to the previous state: %s", subsystem.name, exc)
