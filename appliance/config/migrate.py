"""Schema migrations for the config file, applied to the raw YAML mapping before validation.

Each migration upgrades a mapping from version N to N+1 and must be pure (input mapping -> new mapping).
A config newer than this software is refused: silently dropping fields it does not know would lose them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from appliance.errors import ConfigError, FieldIssue, Message

Migration = Callable[[dict[str, Any]], dict[str, Any]]

# MIGRATIONS[n] upgrades version n to n + 1. Version 1 is the first released schema.
MIGRATIONS: dict[int, Migration] = {}


def migrate(
    raw: dict[str, Any], current: int, migrations: dict[int, Migration] | None = None
) -> dict[str, Any]:
    """Bring `raw` up to `current`. A missing schema_version means the current one."""
    steps = MIGRATIONS if migrations is None else migrations
    version = raw.get("schema_version", current)
    if not isinstance(version, int) or version < 1:
        raise ConfigError(
            [
                FieldIssue(
                    "schema_version", Message("1 以上の整数で入力してください", "must be an integer >= 1")
                )
            ]
        )
    if version > current:
        raise ConfigError(
            [
                FieldIssue(
                    "schema_version",
                    Message(
                        f"この設定は新しい版（{version}）のものです。このソフトウェアは版 {current} までです",
                        f"this config is schema version {version}; this software supports up to {current}",
                    ),
                )
            ]
        )
    data = copy.deepcopy(raw)
    while version < current:
        if version not in steps:
            raise ConfigError(
                [
                    FieldIssue(
                        "schema_version",
                        Message(
                            f"版 {version} からの移行方法がありません", f"no migration from version {version}"
                        ),
                    )
                ]
            )
        data = steps[version](data)
        version += 1
        data["schema_version"] = version
    return data
