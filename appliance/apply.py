"""Applying a config to every engine, all or nothing.

Order of work: render every subsystem (pure) -> check every subsystem (the engines' own validators) ->
apply one by one (firewall first) -> verify each. If any step fails, every subsystem already applied
gets the previous config's rendering back (in reverse order), so the kernel and daemons end as they were.
"""

from __future__ import annotations

import fcntl
import logging
import os
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
    """One apply at a time on a box: the CLI, the web UI, the daemon, the confirm timer and a restore all
    take it. It is a lock on the state directory itself (no lock file to leave in backups); a restore swaps
    the directory by rename while holding the lock on the old one, and whoever waited then works on the
    new one by path."""
    paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd = os.open(paths.state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def render_all(subsystems: Sequence[Subsystem], cfg: MamoriConfig) -> list[tuple[Subsystem, Any]]:
    return [(s, s.render(cfg)) for s in subsystems]


def check_all(rendered: list[tuple[Subsystem, Any]]) -> None:
    for subsystem, result in rendered:
        subsystem.check(result)


def apply_all(subsystems: Sequence[Subsystem], new: MamoriConfig, previous: MamoriConfig | None) -> None:
    """Make `new` live everywhere, or leave `previous` live everywhere and raise ApplyError.

    With no `previous` (a box's very first config), "as before" means fail-closed: each subsystem's
    `reset()` (the firewall loads its fail-closed policy; it never just deletes its table).
    """
    rendered = render_all(subsystems, new)
    check_all(rendered)
    done: list[Subsystem] = []
    current = "?"
    try:
        for subsystem, result in rendered:
            current = subsystem.name
            # Counted as touched before it runs: a subsystem that fails halfway is restored as well.
            done.append(subsystem)
            subsystem.apply(result)
        for subsystem, result in rendered:
            current = subsystem.name
            subsystem.verify(result)
    except Exception as exc:  # any failure (timeouts, OSError, sqlite) must restore, not only ours
        log.error("apply failed in %s: %s; restoring the previous state", current, exc)
        _restore(done, previous)
        if isinstance(exc, ApplyError):
            raise
        if isinstance(exc, MamoriError):
            raise ApplyError(exc.text("ja"), exc.text("en"), code=exc.code) from exc
        raise ApplyError(
            f"{current} の反映中に予期しないエラーが起きたため、元の状態に戻しました: {exc}",
            f"unexpected error while applying {current}; the previous state was restored: {exc}",
            code="apply.unexpected",
        ) from exc


def _restore(done: list[Subsystem], previous: MamoriConfig | None) -> None:
    for subsystem in reversed(done):
        try:
            if previous is not None:
                subsystem.apply(subsystem.render(previous))
            else:
                subsystem.reset()
        except Exception as exc:  # keep restoring the others; this one is reported loudly
            log.critical("could not restore %s to the previous state: %s", subsystem.name, exc)
