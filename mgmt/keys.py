"""The box's own key for the management link: made on first use with `wg genkey` (vpn.keys), kept in the
keys directory with mode 0600, handed to WireGuard only as a file path, never printed or sent. Only its
public key leaves the box (shown to the administrator and the vendor, who adds it to the hub)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.errors import ApplyError
from appliance.fileio import atomic_write
from vpn.keys import generate_private_key, is_valid_key, public_key

log = logging.getLogger(__name__)


def ensure_link_key(path: Path) -> str:
    """Create the key once and return its public key. A loose file mode is tightened, never trusted."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        atomic_write(path, generate_private_key() + "\n", mode=0o600)
        log.info("generated the management link key in %s", path)
    if path.stat().st_mode & 0o077:
        log.warning("tightening permissions of %s", path)
        os.chmod(path, 0o600)
    private = path.read_text(encoding="ascii").strip()
    if not is_valid_key(private):
        raise ApplyError(f"管理接続の鍵ファイル {path} が壊れています", f"the management link key {path} is corrupt",
                         code="mgmt.key")  # fmt: skip
    return public_key(private)


def link_public_key(path: Path) -> str | None:
    """The public key if the key exists (for status and the enrolment page), without creating one."""
    try:
        private = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return public_key(private) if is_valid_key(private) else None
