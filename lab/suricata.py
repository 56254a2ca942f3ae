"""Whether the box's Suricata captures yet: its control socket answers (ids.supervisor calls it running)
before its AF_PACKET threads are bound, so a scan sent at once could pass unseen on a loaded machine.
A lab test sends some traffic through the interface and waits until Suricata has counted packets there."""

from __future__ import annotations

from pathlib import Path

from appliance.errors import MamoriError
from appliance.paths import Paths
from ids import suricatasc
from ids.render import SuricataPaths


def captured(state_dir: Path, iface: str) -> int:
    """Packets Suricata has counted on `iface` (0 while it does not answer or captures nothing there)."""
    socket = SuricataPaths.under(Paths(state_dir=state_dir).run_dir).socket
    try:
        stat = suricatasc.command(socket, "iface-stat", {"iface": iface}, timeout=5)
    except MamoriError:
        return 0
    return int(stat.get("pkts", 0)) if isinstance(stat, dict) else 0


def capturing(state_dir: Path, *ifaces: str) -> bool:
    """Suricata has counted packets on every one of `ifaces` (its capture is up there)."""
    return all(captured(state_dir, iface) > 0 for iface in ifaces)
