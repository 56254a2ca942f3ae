"""The one declarative config: its typed model, loading, migrations and Japanese/English error messages.

The re-exports are resolved lazily: the section models (firewall.model, vpn.model, ...) import
`appliance.config.types`, which must not drag in the root model while it is itself being imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MamoriConfig", "dump_config", "load_config", "load_config_text", "parse_config"]


def __getattr__(name: str) -> Any:
    if name == "MamoriConfig":
        from appliance.config.model import MamoriConfig

        return MamoriConfig
    if name in ("dump_config", "load_config", "load_config_text", "parse_config"):
        from appliance.config import load

        return getattr(load, name)
    raise AttributeError(name)
