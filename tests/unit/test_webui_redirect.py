"""The web UI's plain-HTTP listener only redirects to HTTPS (webui.serve.start_redirect), and a client that
resets its connection or says nothing is no error: no traceback on stderr (socketserver's default, once per
port scan), and a silent connection is closed after REDIRECT_TIMEOUT_S instead of keeping its thread.
Loopback only."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import time

import pytest

import webui.serve
from webui.serve import start_redirect

WAIT_S = 30  # a bound, not an expectation: CI runs the unit tests at nice 19 beside the lab


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(webui.serve, "REDIRECT_TIMEOUT_S", 0.5)
    srv = start_redirect("127.0.0.1:0", 8443)
    yield srv
    srv.shutdown()
    srv.server_close()


def _port(srv) -> int:
    return srv.server_address[1]


def _quiet(caplog) -> set[str]:
    """Which of the two ends the log told, at debug level."""
    said = {r.getMessage(): r.levelno for r in caplog.records}
    return {kind for kind, words in (("reset", "reset by peer"), ("silent", "timed out"))
            if any(words in m and level == logging.DEBUG for m, level in said.items())}  # fmt: skip


def test_every_request_is_sent_to_https_on_the_same_path(server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=WAIT_S)
    conn.request("GET", "/settings/?a=1", headers={"Host": "mamori.local"})
    answer = conn.getresponse()
    assert answer.status == 301
    assert answer.getheader("Location") == "https://mamori.local:8443/settings/?a=1"
    conn.close()


def test_a_reset_and_a_silent_client_are_logged_quietly(server, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG, logger="webui.serve")
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=WAIT_S) as reset:
        reset.sendall(b"GET / HTTP/1.1\r\nHost: x")  # half a request, then a reset (RST, not FIN)
        time.sleep(0.1)
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    silent = socket.create_connection(("127.0.0.1", _port(server)), timeout=WAIT_S)
    try:
        deadline = time.monotonic() + WAIT_S
        while _quiet(caplog) != {"reset", "silent"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _quiet(caplog) == {"reset", "silent"}, caplog.text
        assert silent.recv(1) == b""  # the server closed the silent connection
    finally:
        silent.close()
    assert "Traceback" not in capsys.readouterr().err
