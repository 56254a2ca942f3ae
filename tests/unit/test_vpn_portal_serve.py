"""The portal's HTTP loop stops cleanly: vpn.portal_serve.serve_until closes its sockets in its own thread.

Closing them from another thread while waitress sat in select() raised EBADF in that thread, a traceback in
the daemon's log at every config change (tests/integration/test_firewall_daemon.py caught it in CI).
"""

from __future__ import annotations

import socket
import threading
import urllib.request

from waitress.server import create_server

from vpn.portal_serve import serve_until

# Bounds, not expectations: CI runs these tests at nice 19 beside the integration tests.
WAIT_S = 60


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_serves_then_stops_without_an_exception_and_frees_the_port(monkeypatch) -> None:
    errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    for _round in range(5):  # several rounds, each stopped while the loop polls
        server = create_server(_app, host="127.0.0.1", port=0, threads=2)
        port = server.socket.getsockname()[1]
        stop = threading.Event()
        thread = threading.Thread(target=serve_until, args=(server, stop), kwargs={"tick": 0.05})
        thread.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=WAIT_S) as response:
            assert response.read() == b"ok"
        stop.set()
        thread.join(timeout=WAIT_S)
        assert not thread.is_alive(), f"serve_until did not return within {WAIT_S} s of the stop"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "the listening socket is closed"
    assert errors == []
