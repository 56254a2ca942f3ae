"""What the VPN portal's pages need to know, as plain values: the box (`PortalSite`) and the device asking
(`PortalView`).

Why this shape: the portal process opens no database and reads no config (vpn.portal_serve); it is the one
page a device reaches before its user signs in, so a portal taken over must learn and change as little as
possible. It asks the daemon for these two values and for a sign-in or a logout (vpn.portal_actions), and
`LocalPortal` answers the same four questions from the sessions: in the daemon behind those actions, and
in-process in the unit tests. Nothing else of a user (password, code secret, other devices) ever reaches the
portal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.config.model import MamoriConfig
from vpn.policy import Decision
from vpn.sessions import SessionManager


@dataclass(frozen=True)
class PortalSite:
    """The box as the portal shows it; fixed for one portal process (a config change restarts it)."""

    clinic: str
    timezone: str
    addresses: tuple[str, ...]  # the VPN interface's addresses (vpn.address, vpn.address6), with prefix

    @classmethod
    def of(cls, cfg: MamoriConfig) -> PortalSite:
        return cls(
            cfg.clinic.name, cfg.clinic.timezone, tuple(a for a in (cfg.vpn.address, cfg.vpn.address6) if a)
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PortalSite:
        return cls(str(data["clinic"]), str(data["timezone"]), tuple(str(a) for a in data["addresses"]))


@dataclass(frozen=True)
class PortalView:
    """One device's state: its user's name (empty: the device is not registered), the end of its open
    session (None: not signed in), and whether a cut the kernel refused is still being retried."""

    user_label: str = ""
    expires: float | None = None
    cutting: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PortalView:
        expires = data.get("expires")
        return cls(str(data.get("user_label", "")), float(expires) if expires is not None else None,
                   bool(data.get("cutting", False)))  # fmt: skip


class LocalPortal:
    """The portal's four questions answered from `sessions` in this process."""

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions

    def site(self) -> PortalSite:
        return PortalSite.of(self.sessions.config())

    def view(self, remote_ip: str) -> PortalView:
        dev, user = self.sessions.who(remote_ip)
        if dev is None or user is None:
            return PortalView()
        current = self.sessions.current(remote_ip)
        cutting = any(s.tunnel_ip == dev.ip4 for s in self.sessions.pending())
        return PortalView(user.display_name or user.name, current.expires if current else None, cutting)

    def sign_in(self, remote_ip: str, password: str, code: str) -> Decision:
        return self.sessions.sign_in(remote_ip, password, code)

    def logout(self, remote_ip: str) -> int:
        """How many sessions of the address ended (0: none was open, or its cut failed and is retried)."""
        return len(self.sessions.logout(remote_ip))
