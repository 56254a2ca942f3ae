"""The `ntp:` section of the config: where the box takes its time from, and whether it serves it.

Which zones may ask the box for the time is not configurable here: it follows the firewall's policy table
(firewall.policy.BOX_SERVICES, "ntp"), so the chrony `allow` list and the firewall always agree.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from appliance.config.types import HostName, Strict, mamori_error

# Japanese public NTP services: NICT (the national time standard) and INTERNET MULTIFEED.
DEFAULT_SERVERS: tuple[str, ...] = ("ntp.nict.jp", "ntp.jst.mfeed.ad.jp")


def _not_empty(value: str) -> str:
    if not value:
        raise mamori_error("NTP サーバーの名前が空です", "an NTP server name is empty")
    return value


NtpServer = Annotated[HostName, AfterValidator(_not_empty)]


class NtpConfig(Strict):
    """`servers`: upstream NTP servers (names or addresses). `set_clock: false` leaves the system clock alone
    (a box in a VM whose host keeps the time, or the lab, which shares the machine's clock) while still
    measuring it and serving time to the clinic."""

    enabled: bool = True
    servers: list[NtpServer] = Field(
        default_factory=lambda: list(DEFAULT_SERVERS), min_length=1, max_length=8
    )
    set_clock: bool = True
