"""Children of the daemon that run without any capability: the web UI (appliance.webserver) and the VPN
portal (vpn.daemon). The daemon, root with every capability, binds their listening sockets itself (`listen`)
and starts them with those sockets passed in (`start`); the child only accepts on them.

The child is exec'd through util-linux `setpriv` (setpriv(1)):
  --no-new-privs          no later exec gains a privilege back (setuid bits, file capabilities);
  --inh-caps/--ambient-caps=-all
                          nothing carried across exec;
  --bounding-set=-all     what an exec by uid 0 is given is capped by the bounding set: nothing;
  --securebits noroot, no_setuid_fixup, each locked (and keep_caps locked)
                          uid 0 is not treated as privileged at exec, and the child cannot undo that;
  --pdeathsig TERM        the child ends when the daemon dies (no orphan left holding the ports).
So /proc/PID/status of the child shows CapEff, CapPrm, CapBnd, CapAmb 0 and NoNewPrivs 1: it cannot touch
nftables, interfaces, routes, raw sockets, mounts or modules, bind a port under 1024, read or write another
account's files past their modes, or trace the daemon.

`start` with an account also switches uid and gid (`--reuid`, `--regid`, and `--groups` or `--clear-groups`):
the web UI runs as `mamori-web`, the portal as `mamori-portal` (appliance.child_access says which files are
opened to them). Without an account (a developer machine without `make setup`) the child stays uid 0,
without capabilities, so it still owns every file root owns.
Non-goal: a sandbox of the file system (systemd's ProtectSystem etc.); the box's unit does not have one yet.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from appliance.accounts import Account
from appliance.errors import MamoriError

log = logging.getLogger(__name__)

SETPRIV_FLAGS = (
    "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
    "--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked,+keep_caps_locked",
    "--pdeathsig=TERM",
)  # fmt: skip
BACKLOG = 128


def setpriv() -> str:
    """The setpriv program (util-linux; in the image and in scripts/setup.sh)."""
    found = shutil.which("setpriv")
    if found is None:
        raise MamoriError(
            "setpriv（util-linux）が見つからないため、画面を権限なしで起動できません",
            "setpriv (util-linux) is missing: cannot start a child without capabilities",
            code="unprivileged.no_setpriv",
        )
    return found


def command(argv: Sequence[str], account: Account | None = None, groups: Sequence[int] = ()) -> list[str]:
    """`argv` run through setpriv without any capability; as `account` (its primary group, and `groups` as
    the only supplementary ones) if given."""
    ids: list[str] = []
    if account is not None:
        ids = [f"--reuid={account.uid}", f"--regid={account.gid}",
               f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups"]  # fmt: skip
    return [setpriv(), *ids, *SETPRIV_FLAGS, "--", *argv]


def listen(bind: str) -> socket.socket:
    """A listening TCP socket on `host:port` or `[v6]:port`, bound here (the daemon may bind port 443)."""
    host, port = bind.rsplit(":", 1)
    ip = ipaddress.ip_address(host.strip("[]"))
    sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ip.version == 6:  # this address only, never the v4 one mapped into it
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(ip), int(port)))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def start(
    argv: Sequence[str],
    fds: Sequence[int],
    log_path: Path,
    account: Account | None = None,
    groups: Sequence[int] = (),
) -> subprocess.Popen:
    """Start `argv` without capabilities (as `account`, in `groups`, if given), with the descriptors `fds`
    open under the same numbers (every other one closed), stdout and stderr appended to `log_path` (opened
    here, by the daemon: the child needs no access to run/)."""
    log_file = open(log_path, "ab")
    try:
        return subprocess.Popen(
            command(argv, account, groups), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            pass_fds=tuple(fds), close_fds=True,
        )  # fmt: skip
    finally:
        log_file.close()


def stop(child: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM (the child lets its requests finish), SIGKILL after `timeout` seconds; reaped either way."""
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %d did not stop within %g s; killed", child.pid, timeout)
        child.kill()
        child.wait(5)
