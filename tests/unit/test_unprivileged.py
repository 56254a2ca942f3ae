"""appliance.unprivileged: a child started through it has no capability at all (CapEff, CapPrm, CapBnd,
CapAmb 0), cannot gain one back (NoNewPrivs 1, securebits locked), and holds the socket passed in, under the
same number, and no other descriptor of the parent.

The daemon runs as root: setpriv needs CAP_SETPCAP to empty the bounding set and lock the securebits.
"""

from __future__ import annotations

import os
import socket
import sys

import pytest

from appliance import unprivileged
from appliance.accounts import group_id, lookup
from appliance.child_access import DB_GROUP, WEB_USER
from lab.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's side runs as root; this needs it")

WAIT_S = 60  # a bound, not an expectation: CI runs unit tests beside the integration tests

# The child: accept one connection on the socket passed in, say the number of the accepted one, wait for the
# test to close the connection, exit.
CHILD = """
import socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
conn, _ = listener.accept()
conn.sendall(b"%d\\n" % conn.fileno())
conn.recv(1)
"""


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


@pytest.mark.parametrize("as_account", [False, True], ids=["uid0", "mamori-web"])
def test_the_child_has_no_capability_and_gets_the_socket(tmp_path, as_account: bool) -> None:
    """With an account (the web UI's, `make setup` makes it): every uid and gid of the child are the
    account's, and its only supplementary group is the one given. Without: uid 0, still no capability."""
    account, groups = None, ()
    if as_account:
        account, db_gid = lookup(WEB_USER), group_id(DB_GROUP)
        if account is None or db_gid is None:
            pytest.skip("no mamori-web account here (`make setup` makes it)")
        groups = (db_gid,)
    listener = unprivileged.listen("127.0.0.1:0")
    other = socket.socket()  # open in the parent, not passed: the child must not have it
    port = listener.getsockname()[1]
    log = tmp_path / "child.log"
    child = unprivileged.start(
        [sys.executable, "-I", "-c", CHILD, str(listener.fileno())], [listener.fileno()], log, account, groups
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as conn:
            conn.settimeout(WAIT_S)
            accepted = int(conn.makefile().readline())  # the child answered: it runs python, on our socket
            seen = status(child.pid)
            uid, gid = (account.uid, account.gid) if account else (0, 0)
            assert seen["Uid"].split() == [str(uid)] * 4 and seen["Gid"].split() == [str(gid)] * 4, seen
            assert seen["Groups"].split() == [str(g) for g in groups], seen["Groups"]
            for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
                assert int(seen[cap], 16) == 0, (cap, seen[cap])
            assert seen["NoNewPrivs"] == "1"
            held = {int(fd) for fd in os.listdir(f"/proc/{child.pid}/fd")}
            # stdin, stdout, stderr, the socket passed in and the connection it accepted; not `other`
            assert held == {0, 1, 2, listener.fileno(), accepted}, (held, other.fileno())
        assert child.wait(WAIT_S) == 0, log.read_text(errors="replace")
    finally:
        unprivileged.stop(child, timeout=5)
        listener.close()
        other.close()
    # The parent's own capabilities are untouched (only the child dropped them).
    assert int(status(os.getpid())["CapEff"], 16) != 0


def test_stop_sends_sigterm_then_kills_a_child_that_ignores_it(tmp_path) -> None:
    slow = unprivileged.start(
        [sys.executable, "-I", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        [], tmp_path / "slow.log",
    )  # fmt: skip
    # Wait until python has installed its handler (setpriv and the interpreter start first).
    assert wait_for(
        lambda: "SigIgn" in status(slow.pid) and int(status(slow.pid)["SigIgn"], 16) & (1 << 14), WAIT_S
    )
    unprivileged.stop(slow, timeout=1)
    assert slow.returncode == -9  # SIGTERM ignored: killed after the timeout
    quick = unprivileged.start(
        [sys.executable, "-I", "-c", "import time; time.sleep(600)"], [], tmp_path / "q.log"
    )
    unprivileged.stop(quick, timeout=WAIT_S)
    assert quick.returncode == -15


def test_listen_binds_ipv6_to_its_own_address_only() -> None:
    sock = unprivileged.listen("[::1]:0")
    try:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        sock.close()
