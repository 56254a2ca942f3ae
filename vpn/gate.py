"""The MFA gate's hands on the kernel: admit a tunnel address into the user's nft set, or take it out and
cut the connections it already has open.

The set and the rules that use it belong to the firewall (firewall.render / firewall.sets); this module
only calls `firewall.sets.admit_vpn` / `revoke_vpn`, so there is one owner of the nft table. Why
conntrack too: removing the address from the set stops new connections, but an established TCP
connection is accepted by `ct state established` before the set is consulted; `conntrack -D -s IP`
deletes those entries so the next packet of such a connection is judged again, and dropped.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.config.model import MamoriConfig
from appliance.errors import ApplyError
from appliance.subsystem import Context

if TYPE_CHECKING:
    from firewall.sets import FirewallSets

log = logging.getLogger(__name__)
_DELETED = re.compile(r"(\d+) flow entries have been deleted")


class FirewallGate:
    """Admits/revokes through firewall.sets.FirewallSets, in this process's network namespace."""

    def __init__(self, ctx: Context, config: Callable[[], MamoriConfig]) -> None:
        self.ctx = ctx
        self.config = config

    def _sets(self) -> FirewallSets:
        """Imported late: the firewall area is optional in a minimal image."""
        try:
            from firewall.sets import FirewallSets
        except ImportError as exc:
            raise ApplyError(
                "ファイアウォールがないため VPN の通信を許可できません",
                f"no firewall.sets to admit VPN users: {exc}",
            ) from None
        return FirewallSets(self.ctx, self.config())

    def admit(self, user: str, ip: str, timeout_s: int) -> None:
        ipaddress.ip_address(ip)  # never pass anything but an address down
        self._sets().admit_vpn(user, ip, int(timeout_s))
        log.info("vpn: admitted %s (%s) for %d s", user, ip, timeout_s)

    def revoke(self, user: str, ip: str) -> int:
        """Take the address out of the user's set and cut its open connections; returns connections cut."""
        ipaddress.ip_address(ip)
        self._sets().revoke_vpn(user, ip)
        cut = cut_connections(ip)
        log.info("vpn: revoked %s (%s), %d connection(s) cut", user, ip, cut)
        return cut


def cut_connections(ip: str) -> int:
    """Delete conntrack entries from `ip` (both directions of each flow are one entry)."""
    total = 0
    for flag in ("-s", "-d"):
        try:
            res = subprocess.run(
                ["conntrack", "-D", flag, str(ipaddress.ip_address(ip))],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:  # missing or hung: the caller retries later
            raise ApplyError("接続の切断に失敗しました", f"conntrack -D failed: {exc}") from None
        # conntrack exits 1 when nothing matched; it reports the count on stderr either way
        if res.returncode not in (0, 1):
            raise ApplyError("接続の切断に失敗しました", f"conntrack -D failed: {res.stderr.strip()[:200]}")
        m = _DELETED.search(res.stderr)
        total += int(m.group(1)) if m else 0
    return total
