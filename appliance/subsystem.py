"""The contract every engine-facing part of Mamori (firewall, dnsmasq, Suricata, WireGuard) fulfils.

Desired state flows one way: config model -> `render` (pure, no I/O, unit-tested without root) ->
`check` (the engine's own validation: nft dry-run, `suricata -T`, `dnsmasq --test`; changes nothing) ->
`apply` (atomic for that engine) -> `verify` (read the live state back). The orchestrator in
`appliance.apply` runs check for every subsystem before it applies any, and re-applies the previous
rendering to those already applied if a later one fails, so a config change lands whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from appliance.config.model import MamoriConfig
from appliance.paths import Paths
from appliance.storage import Database


@dataclass(frozen=True)
class Context:
    """What a subsystem may touch: the state paths and the database. The network namespace is the process's."""

    paths: Paths
    db: Database


class Subsystem(Protocol):
    """Subsystems subclass this explicitly (so they get the `reset` default and are seen to fulfil it);
    the orchestrator calls every method unconditionally."""

    name: str

    def render(self, cfg: MamoriConfig) -> Any:
        """Pure: the engine's input for this config. Must not read or write anything."""

    def check(self, rendered: Any) -> None:
        """Ask the engine whether it would accept `rendered`; raise ApplyError if not. Changes nothing."""

    def apply(self, rendered: Any) -> None:
        """Make `rendered` live, atomically for this engine; raise ApplyError and leave the old state if not."""

    def verify(self, rendered: Any) -> None:
        """Read the live state back and raise ApplyError if it is not what `rendered` asked for."""

    def reset(self) -> None:
        """Undo a first apply that failed elsewhere (there is no previous config to render): leave the engine
        safe, fail-closed where that means something (the firewall loads its fail-closed policy). Default:
        nothing, for engines whose half-applied first config is harmless or removed by the next apply."""
        return None
