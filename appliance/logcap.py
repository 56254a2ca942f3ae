"""Caps the log files that the box's helper processes append to, so a card never fills over the years.

journald is capped by its own config (image/rootfs) and EVE by ids.daemon; what is left are the plain
`*.log` files under the state directory: the web UI's access log, chronyd's, sshd's, dnsmasq's and
Suricata's own. Each keeps its file open with O_APPEND for as long as it runs, so a file is never renamed
(the writer would go on filling the renamed one): it is copied to `NAME.1` (replacing the previous copy)
and truncated in place ("copytruncate"). The writer's next line then lands at the start of the file.
A line written between the copy and the truncation can be lost: acceptable for these diagnostic logs,
which are not evidence (the audit log and the incident records are in SQLite).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from appliance.subsystem import Context

log = logging.getLogger(__name__)
CAP_BYTES = 8 << 20
CHECK_EVERY_S = 60.0


def cap_logs(root: Path, cap_bytes: int = CAP_BYTES) -> list[Path]:
    """Copy-and-truncate every `*.log` under `root` larger than `cap_bytes`; returns the files capped."""
    capped = []
    for path in sorted(root.rglob("*.log")):
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size <= cap_bytes:
                continue
            keep = path.with_name(path.name + ".1")
            tmp = path.with_name(f".{path.name}.1.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, keep)
            os.truncate(path, 0)
        except OSError as exc:  # a file that vanished or cannot be read: try again next time
            log.warning("could not cap %s: %s", path, exc)
            continue
        capped.append(path)
        log.info("log %s passed %d MiB: kept as %s.1 and started afresh", path, cap_bytes >> 20, path.name)
    return capped


class LogCapWorker:
    """Persistent daemon worker: checks the state directory's logs once a minute."""

    name = "log-cap"

    def __init__(self, ctx: Context, cap_bytes: int = CAP_BYTES, every: float = CHECK_EVERY_S) -> None:
        self.root = ctx.paths.state_dir
        self.cap_bytes = cap_bytes
        self.every = every

    def run(self, stop: threading.Event) -> None:
        while True:
            cap_logs(self.root, self.cap_bytes)
            if stop.wait(self.every):
                return
