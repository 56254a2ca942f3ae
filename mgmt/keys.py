"""The box's own key for the management link: made on first use with `wg genkey` (vpn.keys), kept in the
keys directory with mode 0600, handed to WireGuard only as a file path, never printed or sent. Only its
public key leaves the box (shown to the administrator and the vendor, who adds it to the hub)."""

from __future__ import annotations

import logging
from pathlib import Path

from vpn.keys import ensure_private_key, is_valid_key, public_key

log = logging.getLogger(__name__)


def ensure_link_key(path: Path) -> str:
    """Create the key once and return its public key. A loose file mode is tightened, never trusted."""
    return ensure_private_key(path, "管理接続", "management link key", code="mgmt.key")


def link_public_key(path: Path) -> str | None:
    """The public key if the key exists (for status and the enrolment page), without creating one."""
    try:
        private = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return public_key(private) if is_valid_key(private) else None
