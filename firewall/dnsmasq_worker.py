"""Daemon worker that runs dnsmasq and restarts it only when its config file changed.

dnsmasq must not blink for a change that does not concern it (a new firewall rule), so it outlives a
worker generation and is adopted by the next one: see appliance.adopted for the life cycle.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from appliance.adopted import AdoptedProcessWorker
from firewall.dnsmasq import conf_path, config_hash


class DnsmasqWorker(AdoptedProcessWorker):
    name = "dnsmasq"
    program = "dnsmasq"
    state_name = "dnsmasq.state"

    def conf_path(self) -> Path:
        return conf_path(self.ctx.paths)

    def conf_marker(self, conf: Path) -> bytes:
        return f"--conf-file={conf}".encode()

    def config_hash(self, text: str) -> str:
        return config_hash(text)

    def spawn(self, conf: Path, text: str) -> subprocess.Popen:
        return subprocess.Popen(["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
