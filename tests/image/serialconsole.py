"""A root shell on a VM's serial console (a qemu chardev unix socket), driven command by command.

Why markers: the console also carries kernel and systemd messages and echoes what is typed. Each command's
output is framed by a random token that is printed by the shell but never typed literally (it is split
in the command line), so the echo of the command cannot be mistaken for its output.

Why a reader thread that does nothing but read: qemu's serial port writes to the socket one byte per send.
The kernel charges each of those sends some hundred bytes of the socket's send buffer, so a reader that
falls a few hundred bytes behind (a regular expression over a long buffer after every recv, a test busy
elsewhere between two waits) makes qemu's writes fail. The 16550 model retries on EAGAIN, and qemu logs the
byte at every failed try (the doubled letters in serial.log), but a failure whose errno reads otherwise is
not retried: the byte is in the log and never reaches the socket. A test once waited 20 minutes for a
kernel command line that the log shows intact. So the socket is drained at once, into `_pending`, and the
waits search their own copy (`buf`) outside the lock.

Why reconnect: the VM's firmware watchdog may power-cycle a VM whose firmware hung (vm.py), i.e. start a new
qemu that listens on the same socket path. Reading goes on where it was; only a VM that stays gone for
`reconnect_s` ends the wait with EOFError.
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Result:
    rc: int
    out: str


class SerialConsole:
    def __init__(self, path: str, connect_timeout: float = 30.0, reconnect_s: float = 0.0) -> None:
        self.path = path
        self.reconnect_s = reconnect_s
        self._closed = False
        self._connect(connect_timeout)
        self.buf = b""  # read and not yet consumed by a wait; only the waiting thread touches it
        self._pending = bytearray()  # read by the reader thread, not yet in buf (under _cond)
        self._cond = threading.Condition()
        self._gone: EOFError | None = None
        self._reader = threading.Thread(target=self._read_loop, name="serial-reader", daemon=True)
        self._reader.start()

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.path)
                self.sock = sock
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline or self._closed:
                    raise
                time.sleep(0.5)

    def _read_loop(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if data:
                with self._cond:
                    self._pending += data
                    self._cond.notify_all()
                continue
            if self._closed:
                return
            self.sock.close()
            try:
                self._connect(self.reconnect_s)
            except OSError:
                with self._cond:
                    self._gone = EOFError("serial console closed (the VM stopped)")
                    self._cond.notify_all()
                return

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
        except OSError:
            pass
        self._reader.join(timeout=5)
        self.sock.close()

    def _read_until(self, pattern: re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                self.buf += bytes(self._pending)
                self._pending.clear()
                gone = self._gone
            m = pattern.search(self.buf)  # outside the lock: the reader keeps reading meanwhile
            if m:
                self.buf = self.buf[m.end() :]
                return m
            if gone is not None:
                raise gone
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.buf[-2000:].decode(errors="replace")
                raise TimeoutError(
                    f"no {pattern.pattern!r} on the serial console within {timeout:.0f} s; last output:\n{tail}"
                )
            with self._cond:
                if not self._pending and self._gone is None:
                    self._cond.wait(min(left, 1.0))

    def wait_for(self, text: str, timeout: float) -> None:
        self._read_until(re.compile(re.escape(text.encode())), timeout)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def run(self, command: str, timeout: float = 60.0) -> Result:
        """Runs `command` in the shell and returns its exit code and output (stdout and stderr)."""
        tok = secrets.token_hex(6)
        half = len(tok) // 2
        begin, end = f"<<B{tok}>>", f"<<E{tok}"
        self.send(
            f"printf '%s\\n' '<<B{tok[:half]}''{tok[half:]}>>'; {{ {command}; }} 2>&1; "
            f"printf '%s %s>>\\n' '<<E{tok[:half]}''{tok[half:]}' \"$?\""
        )
        self._read_until(re.compile(re.escape(begin.encode()) + rb"\r?\n"), timeout)
        m = self._read_until(re.compile(rb"(.*?)" + re.escape(end.encode()) + rb" (\d+)>>", re.S), timeout)
        out = m.group(1).decode(errors="replace").replace("\r\n", "\n")
        return Result(int(m.group(2)), out)
