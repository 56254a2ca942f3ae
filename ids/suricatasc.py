"""A minimal client for Suricata's unix command socket (the protocol suricatasc speaks).

Used for `reload-rules` (new rules live without restarting capture), `ruleset-stats`, `uptime`.
One connection per command: Suricata handles a few clients, and a fresh connection never sees a stale reply.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from appliance.errors import MamoriError

MAX_REPLY = 4 * 1024 * 1024


class SuricataSocketError(MamoriError):
    code = "ids.socket"


def _recv_json(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while len(data) < MAX_REPLY:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:
            continue
    raise SuricataSocketError("Suricata から正しい応答がありません", "no valid reply from Suricata")


def command(path: Path, name: str, arguments: dict[str, Any] | None = None, timeout: float = 120) -> Any:
    """Send one command; returns the reply's `message`. Raises SuricataSocketError on NOK or no socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps({"version": "0.2"}).encode())
            hello = _recv_json(sock)
            if hello.get("return") != "OK":
                raise SuricataSocketError(
                    "Suricata が接続を拒否しました", f"Suricata refused the client: {hello}"
                )
            msg: dict[str, Any] = {"command": name}
            if arguments:
                msg["arguments"] = arguments
            sock.sendall(json.dumps(msg).encode() + b"\n")  # Suricata reads a command up to the newline
            reply = _recv_json(sock)
    except OSError as exc:
        raise SuricataSocketError(
            f"Suricata の制御ソケットに接続できません（{exc}）", f"cannot talk to Suricata's socket ({exc})"
        ) from exc
    if reply.get("return") != "OK":
        raise SuricataSocketError(
            f"Suricata がコマンド {name} を実行できませんでした: {reply.get('message')}",
            f"Suricata failed command {name}: {reply.get('message')}",
        )
    return reply.get("message")
