"""tests/image/serialconsole.py, the image tests' serial console, against a local unix socket that writes as
qemu's serial port does (one byte per send): the reader thread drains it while the test thread is busy,
nothing is lost or doubled, and a console whose qemu was power-cycled (vm.py) reconnects to the same path
and reads on. Loopback only (a socket in the test's temporary directory); every loop is bounded."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "image"))

from serialconsole import SerialConsole

WAIT_S = 30  # a bound, not an expectation: CI runs the unit tests at nice 19 beside the lab
TEXT = (
    b"".join(b"line %05d of the boot\r\n" % i for i in range(2000)) + b"Command line: root=PARTUUID=ab-cd\r\n"
)


def serve_once(path: Path, payload: bytes) -> threading.Thread:
    """A listener at `path` that accepts one client and sends `payload` one byte per send, then closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                for i in range(len(payload)):
                    conn.send(payload[i : i + 1])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_every_byte_sent_one_at_a_time_arrives_once_while_the_test_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "serial.sock"
    sender = serve_once(path, TEXT)
    console = SerialConsole(str(path), connect_timeout=WAIT_S)
    try:
        time.sleep(0.5)  # busy elsewhere, as a test between two waits: the reader drains meanwhile
        m = console._read_until(
            re.compile(rb"\A(?P<all>.*?)Command line:[^\n]*?root=PARTUUID=(?P<uuid>[0-9a-f-]+)", re.S), WAIT_S
        )
        sender.join(WAIT_S)
        assert not sender.is_alive()
        assert m.group("uuid") == b"ab-cd"
        assert m.group(0) + console._read_until(re.compile(rb"\r\n"), WAIT_S).group(0) == TEXT  # once each
    finally:
        console.close()


def test_a_power_cycled_vm_is_read_on_after_a_reconnect(tmp_path: Path) -> None:
    path = tmp_path / "serial.sock"
    first = serve_once(path, b"Restarting system\r\n")
    console = SerialConsole(str(path), connect_timeout=WAIT_S, reconnect_s=WAIT_S)
    try:
        console.wait_for("Restarting system", WAIT_S)
        first.join(WAIT_S)
        path.unlink()  # as vm.py does before it starts the new qemu
        second = serve_once(path, b"BdsDxe: starting Boot0001\r\n")
        console.wait_for("BdsDxe: starting", WAIT_S)
        second.join(WAIT_S)
    finally:
        console.close()


def test_a_vm_that_stays_gone_ends_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "serial.sock"
    sender = serve_once(path, b"")  # accepts, says nothing, closes: qemu stopped
    console = SerialConsole(str(path), connect_timeout=WAIT_S, reconnect_s=0.0)
    try:
        sender.join(WAIT_S)
        path.unlink()  # and no new qemu comes
        with pytest.raises(EOFError):
            console.wait_for("never", WAIT_S)
    finally:
        console.close()
