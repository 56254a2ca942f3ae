"""Names of the per-user VPN sets, shared by the renderer that declares them (firewall.render), the rules
that match them (firewall.render_rules) and the live updates that fill them (firewall.sets).

Its own module so none of those has to import another for a name (render.py and render_rules.py
imported each other for it). Pure, no imports from the project.
"""

from __future__ import annotations

import hashlib


def vpn_set_name(user_name: str) -> str:
    """Stable, nft-safe set name for a VPN user (names may be Japanese; set names should be ASCII)."""
    return "vpnu_" + hashlib.sha1(user_name.encode("utf-8")).hexdigest()[:12]
