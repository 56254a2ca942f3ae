"""Suricata supervised for real in a throw-away namespace: it runs as the mamori-ids account (real and
effective uid, no CAP_SYS_ADMIN) and still captures, rule changes go live with `reload-rules` (same process,
capture not restarted), a reload that Suricata rejects is rolled back, a YAML change restarts it, a crash
is restarted with back-off, and disabling the IDS stops it."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from appliance.config.load import load_config
from appliance.errors import ApplyError
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from ids import suricatasc
from ids.account import lookup
from ids.render import SuricataPaths
from ids.subsystem import IdsSubsystem
from ids.supervisor import SuricataSupervisor, read_status
from lab.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("suricata") is None, reason="suricata is not installed"),
]


def _enter_netns(name: str) -> None:
    """Move the calling thread (only) into a namespace; children it starts are born there."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_frame(src: str, dst: str, dport: int, sport: int = 40000) -> bytes:
    """An Ethernet frame with a TCP SYN: what an attacker's first packet to RDP looks like on the wire."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    tcp = (
        tcp[:16] + struct.pack("!H", _checksum(s + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    )
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00" + ip + tcp


def inject(netns: str, ifname: str, frame: bytes) -> None:
    """Send a frame out of `ifname` in the namespace (it arrives on its veth peer, where Suricata listens)."""
    code = ("import socket,sys;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind((sys.argv[1],0));"
            "s.send(bytes.fromhex(sys.argv[2]))")  # fmt: skip
    subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code, ifname, frame.hex()], check=True
    )


@pytest.fixture
def netns():
    name = f"ids{os.getpid()}r"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["ip", "link", "add", "wan0", "type", "veth", "peer", "name", "lan0"],
                     ["ip", "link", "set", "wan0", "up"], ["ip", "link", "set", "lan0", "up"]):  # fmt: skip
            subprocess.run(["ip", "netns", "exec", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


CAP_SYS_ADMIN, CAP_NET_RAW = 21, 13


def proc_ids(pid: int) -> tuple[list[int], int]:
    """(the four uids of the `Uid:` line: real, effective, saved, fs), CapEff) of a running process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return [int(u) for u in fields["Uid"].split()], int(fields["CapEff"].strip(), 16)


def cfg_with(**ids):
    cfg = load_config(REPO / "examples" / "clinic.yaml").model
    return cfg.model_copy(update={"ids": cfg.ids.model_copy(update=ids)})


@pytest.fixture
def state_dir():
    """A private (0700) state directory outside pytest's own: another pytest run starting meanwhile chmods
    /tmp/pytest-of-root back to 0700, which would take away the traversal Suricata's account was granted."""
    path = Path(tempfile.mkdtemp(prefix="mamori-ids-reload-"))
    try:
        yield path / "state"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_reload_rollback_restart_and_disable(tmp_path: Path, state_dir: Path, netns: str) -> None:
    account = lookup()
    assert account is not None, "the mamori-ids account is missing: make setup (scripts/setup.sh) creates it"
    paths = Paths(config=tmp_path / "c.yaml", state_dir=state_dir)
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    ctx = Context(paths, db)
    live = SuricataPaths.under(paths.run_dir)
    sub = IdsSubsystem(ctx)
    from ids.model import Suppression, Threshold

    first = sub.render(cfg_with(interfaces=["wan0"], suppress=[Suppression(sid=1990007, track="by_src", ip="192.168.30.40")],
                                thresholds=[Threshold(sid=1990009, type="both", count=3, seconds=60)]))  # fmt: skip
    sub.check(first)
    sub.apply(first)

    sup = SuricataSupervisor(ctx, min_backoff=0.5, max_backoff=2.0, tick=0.2)
    stop = threading.Event()

    def run() -> None:
        _enter_netns(netns)
        sup.run(stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: read_status(ctx).state == "running", 90), read_status(ctx)
        pid = read_status(ctx).pid

        # 0. Not root: the account's uid, real and effective; capture capabilities only, no CAP_SYS_ADMIN.
        uids, cap_eff = proc_ids(pid)
        assert uids == [account.uid] * 4
        assert not cap_eff & (1 << CAP_SYS_ADMIN) and cap_eff & (1 << CAP_NET_RAW)
        assert read_status(ctx).user == "mamori-ids"
        assert live.eve.stat().st_uid == account.uid  # it opened its EVE file itself, after dropping
        before = suricatasc.command(live.socket, "ruleset-reload-time")

        # 1. A rule change: live reload, same process.
        second = sub.render(cfg_with(interfaces=["wan0"], disable_sids=[1990001]))
        sub.check(second)
        sub.apply(second)
        assert "# alert tcp $EXTERNAL_NET any -> $HOME_NET 3389" in live.rules.read_text()
        assert suricatasc.command(live.socket, "ruleset-reload-time") != before
        assert read_status(ctx).pid == pid and sup.child.poll() is None

        # 1b. Real packets → alerts in eve.json → ingested; eve.json rotated by the worker (rename +
        # reopen-log-files) and followed into the new file: each alert stored exactly once.
        from ids.daemon import EveIngestWorker
        from ids.eve_reader import counters
        from ids.incidents import list_incidents

        worker = EveIngestWorker(ctx, cfg_with(interfaces=["wan0"]), responders=[], rotate_bytes=1)
        inject(netns, "lan0", syn_frame("198.51.100.71", "203.0.113.2", 5900))
        assert wait_for(
            lambda: worker.step() or any(i.src_ip == "198.51.100.71" for i in list_incidents(db)), 20
        )
        worker.step()  # at the end of the file: rotates it
        assert live.eve.with_name("eve.json.1").exists()
        inject(netns, "lan0", syn_frame("198.51.100.72", "203.0.113.2", 5900))
        assert wait_for(
            lambda: worker.step() or any(i.src_ip == "198.51.100.72" for i in list_incidents(db)), 20
        )
        worker.reader.close()
        vnc = [i for i in list_incidents(db) if i.sid == 1990003]
        assert sorted(i.src_ip for i in vnc) == ["198.51.100.71", "198.51.100.72"] and all(
            i.count == 1 for i in vnc
        )
        assert counters(db)["rotations"] == 1 and read_status(ctx).pid == pid

        # 2. A rule set Suricata rejects on reload: the previous files come back, still the same process.
        third = sub.render(cfg_with(interfaces=["wan0"], disable_sids=[1990002]))
        sub._built = {third: 'alert tcp any any -> any any (msg:"bad"; nosuchkeyword; sid:1999999;)\n'}
        with pytest.raises(ApplyError) as err:
            sub.apply(third)
        assert err.value.code == "ids.reload_failed" and "元のルールに戻しました" in err.value.text("ja")
        assert "nosuchkeyword" not in live.rules.read_text() and "sid:1990001" in live.rules.read_text()
        stats = suricatasc.command(live.socket, "ruleset-stats")
        assert stats[0]["rules_failed"] == 0 and read_status(ctx).pid == pid

        # 3. A crash: restarted with back-off.
        os.kill(pid, signal.SIGKILL)
        st = wait_for(lambda: (s := read_status(ctx)).state == "running" and s.pid != pid and s, 90)
        assert st and st.restarts == 1 and st.last_exit == -signal.SIGKILL
        pid = st.pid
        assert proc_ids(pid)[0] == [account.uid] * 4  # the restarted one too

        # 4. A YAML change (capture on another interface): restarted by the supervisor.
        fourth = sub.render(cfg_with(interfaces=["lan0"], disable_sids=[1990001]))
        sub.apply(fourth)
        st = wait_for(lambda: (s := read_status(ctx)).state == "running" and s.pid != pid and s, 90)
        assert st, read_status(ctx)

        # 5. Disabled: stopped, and says so.
        sub.apply(sub.render(cfg_with(enabled=False)))
        assert wait_for(lambda: read_status(ctx).state == "disabled", 30)
        assert sup.child is None
    finally:
        stop.set()
        thread.join(timeout=30)
        sup.shutdown()


def unit_bounding_set() -> str:
    """The daemon unit's CapabilityBoundingSet= as setpriv's --bounding-set argument."""
    unit = (REPO / "image" / "systemd" / "mamori.service").read_text()
    caps = next(ln for ln in unit.splitlines() if ln.startswith("CapabilityBoundingSet=")).split("=", 1)[1]
    return "-all," + ",".join("+" + cap.lower().removeprefix("cap_") for cap in caps.split())


def test_suricata_drops_to_its_account_within_the_units_capabilities(state_dir: Path, netns: str) -> None:
    """On the box the daemon runs with the unit's bounding set and NoNewPrivileges: Suricata must still be
    able to change to its account there (libcap-ng empties its bounding set, which needs CAP_SETPCAP)."""
    from ids.account import prepare
    from ids.engine import SURICATA
    from ids.render import suricata_argv

    account = lookup()
    assert account is not None, "the mamori-ids account is missing: make setup (scripts/setup.sh) creates it"
    paths = Paths(config=state_dir / "c.yaml", state_dir=state_dir)
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    sub = IdsSubsystem(Context(paths, db))
    sub.apply(sub.render(cfg_with(interfaces=["wan0"])))
    live = SuricataPaths.under(paths.run_dir)
    prepare(live, account)
    argv = ["ip", "netns", "exec", netns, "setpriv", f"--bounding-set={unit_bounding_set()}", "--inh-caps=-all",
            "--no-new-privs", "--", *suricata_argv(SURICATA, live, account.user, account.group)]  # fmt: skip
    with open(live.log_dir / "suricata.log", "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, umask=0o077)
    try:
        assert wait_for(lambda: proc.poll() is not None or live.socket.exists(), 60)
        assert proc.poll() is None, (live.log_dir / "suricata.log").read_text()
        assert suricatasc.command(live.socket, "uptime", timeout=10) is not None
        uids, cap_eff = proc_ids(proc.pid)  # ip netns exec and setpriv exec Suricata in the same process
        assert uids == [account.uid] * 4 and not cap_eff & (1 << CAP_SYS_ADMIN)
        cap_bnd = next(
            ln for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if ln.startswith("CapBnd:")
        )
        assert int(cap_bnd.split()[1], 16) == 0  # nothing left to regain
    finally:
        proc.terminate()
        proc.wait(timeout=30)
