"""What maintenance SSH is doing right now, for `mamori ssh status` and the web UI: whether the live
config switches it on, where sshd listens, which keys may log in (by fingerprint, as a vendor reads them
out over the phone), whether Mamori's sshd runs and how many sessions are open."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field

from appliance.revisions import RevisionStore
from appliance.subsystem import Context
from sshsvc.render import listen_addresses


@dataclass(frozen=True)
class KeyView:
    fingerprint: str  # "SHA256:..." from ssh-keygen -lf, or "" if it could not be read
    kind: str
    comment: str


@dataclass(frozen=True)
class SshState:
    enabled: bool
    addresses: list[str] = field(default_factory=list)
    keys: list[KeyView] = field(default_factory=list)
    pid: int | None = None  # Mamori's sshd listener, if it runs
    sessions: int = 0


def fingerprint(key: str) -> KeyView:
    """`ssh-keygen -lf` on one validated public key line (never the shell; the key goes in a file)."""
    parts = key.split(maxsplit=2)
    kind, comment = parts[0], parts[2] if len(parts) > 2 else ""
    with tempfile.NamedTemporaryFile("w", suffix=".pub", encoding="utf-8") as fh:
        fh.write(key + "\n")
        fh.flush()
        try:
            res = subprocess.run(["ssh-keygen", "-lf", fh.name], capture_output=True, text=True, timeout=10,
                                 check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return KeyView("", kind, comment)
    fields = res.stdout.split()
    return KeyView(fields[1] if res.returncode == 0 and len(fields) > 1 else "", kind, comment)


def ssh_state(ctx: Context) -> SshState:
    from appliance.config.load import parse_config
    from sshsvc.worker import SshdWorker, session_pids

    rev = RevisionStore(ctx.db).live()
    if rev is None:
        return SshState(enabled=False)
    cfg = parse_config(rev.config_text).model
    pid = SshdWorker(ctx).running_pid()  # the worker's own test: its state file and sshd on our config
    return SshState(
        enabled=cfg.ssh.enabled,
        addresses=listen_addresses(cfg),
        keys=[fingerprint(k) for k in cfg.ssh.authorized_keys] if cfg.ssh.enabled else [],
        pid=pid,
        sessions=len(session_pids(pid)) if pid else 0,
    )
