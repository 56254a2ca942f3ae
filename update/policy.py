"""May a verified bundle be installed on this box? Pure: the manifest and what the box is, nothing else.

Order matters for the message a person reads: the architecture first (nothing else matters then), then the
version rules. "Not an image box" is not checked here: a lab box verifies and stages like a real one and is
refused only when it asks to install (`check_can_install`).
"""

from __future__ import annotations

from update import errors
from update.box import BoxInfo
from update.manifest import Manifest


def check_acceptable(manifest: Manifest, box: BoxInfo) -> None:
    """Raise UpdateRefused if the bundle must not be staged for this box."""
    if manifest.arch != box.arch:
        raise errors.arch(manifest.arch, box.arch)
    running = box.version
    if running is None:
        return  # nothing to compare with; install is refused later (not an image box)
    if manifest.version == running:
        raise errors.same(str(running))
    if manifest.version < running and not manifest.rollback_allowed:
        raise errors.downgrade(str(manifest.version), str(running))
    if manifest.min_from is not None and running < manifest.min_from:
        raise errors.min_from(str(manifest.min_from), str(running))


def check_can_install(box: BoxInfo) -> None:
    if box.version is None:
        raise errors.not_image("IMAGE_VERSION がありません", "no /usr/share/mamori/IMAGE_VERSION")
    if not box.has_fallback_slot:
        raise errors.not_image("予備の領域（スロット B）がありません", "no second root slot")
