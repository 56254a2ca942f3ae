"""The one address rule set of the config (appliance.config.types): where a host may point (points_inside,
used by the webhook URL and the SIEM collector through wan) and what a host name is (is_host_name, used by
HostName and mgmt.hub_endpoint). Valid and invalid side by side."""

from __future__ import annotations

import pytest

from appliance.config.types import is_host_name, points_inside
from mgmt.model import split_endpoint


@pytest.mark.parametrize(
    ("host", "inside"),
    [
        ("192.168.10.10", True), ("10.77.0.1", True), ("127.0.0.1", True), ("169.254.1.1", True),
        ("100.64.0.1", True), ("fd00::1", True), ("fe80::1", True), ("::ffff:192.168.1.1", True),
        ("localhost", True), ("nas.local", True), ("LOCALHOST", True),
        ("203.0.113.9", False), ("2001:db8::5", False), ("siem.example.jp", False), ("8.8.8.8", False),
    ],
)  # fmt: skip
def test_where_a_host_points(host: str, inside: bool) -> None:
    assert points_inside(host) is inside


@pytest.mark.parametrize(
    ("name", "ok"),
    [("hub.example.jp", True), ("a", True), ("x-1.example", True), ("-bad.example", False),
     ("bad-.example", False), ("two..dots", False), ("under_score.jp", False), ("a" * 64 + ".jp", False),
     ("host:51820", False), ("", False)],
)  # fmt: skip
def test_what_a_host_name_is(name: str, ok: bool) -> None:
    assert is_host_name(name) is ok


def test_the_management_endpoint_uses_the_same_host_rule() -> None:
    assert split_endpoint("Hub.Example.JP:51820") == ("hub.example.jp", 51820)
    with pytest.raises(Exception, match="host:port"):
        split_endpoint("under_score.jp:51820")
