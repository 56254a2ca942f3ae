"""Sign-in: the page to return to after password + TOTP, and what is refused as a return address."""

from __future__ import annotations

from urllib.parse import urlsplit

import pyotp
import pytest
from flask.testing import FlaskClient

from tests.webui_fixtures import PASSWORD, Box, box_fixture, csrf  # noqa: F401


def sign_in(box: Box, client: FlaskClient, name: str = "admin") -> str:
    """Password, then TOTP if the account has it; the path of the page the last step sends to."""
    token = csrf(client, "/login")
    r = client.post("/login", data={"csrf_token": token, "username": name, "password": PASSWORD})
    if box.secrets.get(name):
        assert r.headers["Location"].endswith("/login/totp")
        token = csrf(client, "/login/totp")
        box.clock.advance(30)
        r = client.post(
            "/login/totp", data={"csrf_token": token, "code": pyotp.TOTP(box.secrets[name]).at(box.clock.now)}
        )
    assert r.status_code == 302, r.status_code
    location = r.headers["Location"]
    assert not urlsplit(location).netloc or urlsplit(location).netloc == "localhost", location
    return urlsplit(location).path


@pytest.mark.parametrize(("asked", "lands"), [("/alerts", "/alerts/"), ("/alerts/", "/alerts/"),
                                              ("/firewall/", "/firewall/"), ("/settings/ssh", "/settings/ssh")])  # fmt: skip
def test_a_signed_out_request_lands_on_the_page_it_asked_for(box: Box, asked: str, lands: str) -> None:
    client = box.client()
    r = client.get(asked)
    assert r.status_code in (302, 308)
    if r.status_code == 308:  # /alerts -> /alerts/ is Werkzeug's own redirect, before any sign-in check
        r = client.get(r.headers["Location"])
    assert r.headers["Location"].endswith("/login")
    assert sign_in(box, client) == lands


def test_a_viewer_without_totp_lands_there_too(box: Box) -> None:
    client = box.client()
    client.get("/alerts/")
    assert sign_in(box, client, "staff") == "/alerts/"


HOSTILE = [
    "//evil.example/",
    "/\\evil.example/",
    "/\\/evil.example/",
    "/%09/evil.example/",
    "/\t/evil.example/",
    "/\x00/evil.example/",
    "/%5C%5Cevil.example/",
    "/%2F%2Fevil.example/",
    "https://evil.example/",
    "http:/evil.example/",
    "javascript:alert(1)",
    " /alerts/",
    "/no-such-page",
    "/login",
    "/logout",
    "/static/mamori.css",
    "/alerts/\u2028",
    "",
    None,
    42,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_return_addresses_land_on_the_dashboard(box: Box, value: object) -> None:
    client = box.client()
    with client.session_transaction() as sess:
        sess["next"] = value
    assert sign_in(box, client) == "/"


@pytest.mark.parametrize("path", ["/%09/evil.example/", "/%5C/evil.example/", "//evil.example/", "/nothing"])
def test_hostile_paths_requested_while_signed_out_land_on_the_dashboard(box: Box, path: str) -> None:
    client = box.client()
    client.get(path)
    assert sign_in(box, client) == "/"
