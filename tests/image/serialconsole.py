"""A root shell on a VM's serial console (a qemu chardev unix socket), driven command by command.

Why markers: the console also carries kernel and systemd messages and echoes what is typed. Each command's
output is framed by a random token that is printed by the shell but never typed literally (it is split
in the command line), so the echo of the command cannot be mistaken for its output.

Why reconnect: the VM's firmware watchdog may power-cycle a VM whose firmware hung (vm.py), i.e. start a new
qemu that listens on the same socket path. Reading goes on where it was; only a VM that stays gone for
`reconnect_s` ends the wait with EOFError.
"""

from __future__ import annotations

import re
import secrets
import socket
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
        self._connect(connect_timeout)
        self.buf = b""

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        self.sock.close()

    def _read_until(self, pattern: re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m:
                self.buf = self.buf[m.end() :]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.buf[-2000:].decode(errors="replace")
                raise TimeoutError(
                    f"no {pattern.pattern!r} on the serial console within {timeout:.0f} s; last output:\n{tail}"
                )
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.sock.close()
                try:
                    self._connect(self.reconnect_s)
                except OSError:
                    raise EOFError("serial console closed (the VM stopped)") from None
                continue
            self.buf += data

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
