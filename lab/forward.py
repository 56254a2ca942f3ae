"""A TCP forwarder from this machine's loopback into the lab, so a browser here can reach the web UI.

The demo creates the listening socket on 127.0.0.1 in the root namespace and hands it to this process,
which runs inside a LAN host's namespace (`ip netns exec <reception> python -m lab.forward --fd N ...`):
accepted connections come from the root namespace's loopback, outgoing ones leave from the reception PC,
so the box sees an ordinary LAN client. Nothing is forwarded anywhere but the one target address.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.topology import Lab

MAX_CONNECTIONS = 64


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        client, _ = listener.accept()
        if not slots.acquire(blocking=False):
            client.close()
            continue
        try:
            upstream = socket.create_connection(target, timeout=5)
            upstream.settimeout(None)  # the timeout was for connecting; an idle browser tab must not drop
        except OSError:
            client.close()
            slots.release()
            continue

        def run(c: socket.socket = client, u: socket.socket = upstream) -> None:
            t = threading.Thread(target=pump, args=(u, c), daemon=True)
            t.start()
            pump(c, u)
            t.join()
            c.close()
            u.close()
            slots.release()

        threading.Thread(target=run, daemon=True).start()


def open_forward(lab: Lab, key: str, local_port: int, target: str) -> int | None:
    """Listen on 127.0.0.1:local_port here and forward to `target` ("host:port") from inside the namespace of
    `key` (this module, run there with the listening socket handed over). None: the port is busy here."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", local_port))
    except OSError:
        listener.close()
        return None
    listener.listen(16)
    fd = listener.fileno()
    lab.spawn(key, [sys.executable, "-m", "lab.forward", "--fd", str(fd), "--to", target], pass_fds=(fd,),
              cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    listener.close()
    return local_port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--to", required=True, help="host:port inside the lab")
    args = parser.parse_args()
    host, port = args.to.rsplit(":", 1)
    serve(socket.socket(fileno=args.fd), (host, int(port)))


if __name__ == "__main__":
    main()
