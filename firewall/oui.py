"""MAC vendor lookup from Debian's ieee-data (the IEEE OUI registry), loaded once per process."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)
OUI_FILE = Path("/usr/share/ieee-data/oui.txt")
_LINE = re.compile(r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})\s+\(hex\)\s+(.+?)\s*$")


@lru_cache(maxsize=4)
def oui_table(path: Path = OUI_FILE) -> dict[str, str]:
    table: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        log.warning("%s is missing (install ieee-data); vendors will be unknown", path)
        return table
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            table["".join(m.group(1, 2, 3))] = m.group(4)
    return table


def vendor(mac: str, path: Path = OUI_FILE) -> str:
    """'00:1b:63:aa:bb:cc' -> 'Apple, Inc.'; '' when unknown or locally administered (random MACs)."""
    digits = mac.replace(":", "").replace("-", "").upper()
    if len(digits) != 12:
        return ""
    if int(digits[1], 16) & 0x2:  # locally administered: phones' private addresses, VMs
        return ""
    return oui_table(path).get(digits[:6], "")
