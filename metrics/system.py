"""Readings of the machine itself from /proc and /sys: uptime, memory, CPU temperature.

Each function takes the root it reads under (tests point it at a made-up tree) and returns None, or
nothing, where the file is missing or unreadable: a board without a thermal sensor simply has no
temperature series, it is not an error.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/")


def uptime_seconds(root: Path = ROOT) -> float | None:
    try:
        return float((root / "proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory_bytes(root: Path = ROOT) -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in bytes."""
    try:
        fields = {}
        for line in (root / "proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
        return fields["MemTotal"], fields["MemAvailable"]
    except (OSError, KeyError):
        return None


def temperatures_celsius(root: Path = ROOT) -> list[tuple[str, str, float]]:
    """(zone, type, °C) for each thermal zone whose temp reads (millidegrees in the kernel's file)."""
    out = []
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        try:
            millis = int((zone / "temp").read_text().strip())
            kind = (zone / "type").read_text().strip() if (zone / "type").exists() else ""
        except (OSError, ValueError):
            continue
        out.append((zone.name, kind[:40], millis / 1000.0))
    return out
