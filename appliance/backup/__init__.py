"""Encrypted backups of the box: create, list, export, verify ("restore test") and restore.

The public API is imported lazily so that `appliance.config.model` can import `appliance.backup.model`
without pulling the whole package (and the config loader) in a cycle.
"""

from __future__ import annotations

from typing import Any

_API = {
    "create_backup": "appliance.backup.api",
    "restore_backup": "appliance.backup.api",
    "test_backup": "appliance.backup.api",
    "Manifest": "appliance.backup.manifest",
    "TestResult": "appliance.backup.api",
    "BackupError": "appliance.backup.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
