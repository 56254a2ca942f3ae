"""A backup restored onto a spare of another model: its ports have other names (a Raspberry Pi's wan0/lan0
on a mini PC's enp1s0/enp2s0). Real veth ports renamed in the box's namespace, the real daemon running on
the new box, the real `mamori backup restore`: refused without a mapping or with a wrong one (the box's
files byte for byte the same), done with `--ports` — the firewall names the new ports, the VPN peers keep
their keys, DHCP serves on the new port, and nothing else has to be run."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from lab.box import Box
from lab.state import ruleset
from lab.waiting import wait_or_fail

pytestmark = pytest.mark.integration
PASS = "shinryoujo no kagi wa hikidashi ni"
RENAMES = {"wan0": "enp1s0", "lan0": "enp2s0", "guest0": "enp3s0", "dev0": "enp4s0"}
MAPPING = ",".join(f"{a}={b}" for a, b in RENAMES.items())


def peers(box: Box, ifname: str) -> dict[str, str]:
    dump = box.lab.run("box", ["wg", "show", ifname, "dump"], check=False).stdout.splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[3] for line in dump}


def files(box: Box) -> dict[str, bytes]:
    """Every file of the box, but the logs the running daemon and web UI append to by themselves and the
    database, which the daemon's workers write on their own schedule (the inventory every 30 s): a byte
    comparison of it failed whenever a refusal took longer on a loaded machine. records() compares what a
    restore would write there."""
    return {str(p): p.read_bytes() for p in sorted(box.state_dir.rglob("*"))
            if p.is_file() and not p.name.endswith(".log") and not p.name.startswith("mamori.db")}  # fmt: skip


def records(box: Box) -> tuple[list, list]:
    """The revisions and the audit trail of the box's database."""
    conn = sqlite3.connect(box.state_dir / "db" / "mamori.db", timeout=30)
    try:
        return (conn.execute("SELECT * FROM revisions ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM audit ORDER BY id").fetchall())  # fmt: skip
    finally:
        conn.close()


def test_restore_onto_a_box_whose_ports_have_other_names(box: Box, tmp_path: Path) -> None:
    ifname = box.config.read_text().split("interface: ", 1)[1].split()[0]
    box.start_daemon()
    added = box.mamori("vpn", "add", "yamada", "自宅PC", "--out", str(tmp_path / "doctor"),
                       "--password-stdin", stdin="Kanja-no-Himitsu-2026\n")  # fmt: skip
    assert added.returncode == 0
    wait_or_fail(lambda: len(peers(box, ifname)) == 1, 20, "one VPN peer before the backup")
    old_peers = peers(box, ifname)
    box.mamori("backup", "set-passphrase", stdin=PASS + "\n")
    usb = tmp_path / "usb"
    usb.mkdir()
    box.mamori("backup", "create", "--out", str(usb / "box.mbk"))

    # The old box is gone. The spare has the same cables in ports with other names, a fresh card, and
    # its daemon running (as systemd starts it on a new box, with no config yet).
    box.stop_daemon()
    box.lab.run("box", ["ip", "link", "del", ifname], check=False)
    box.lab.run("box", ["nft", "delete", "table", "inet", "mamori"])
    for old, new in RENAMES.items():
        for argv in (["set", old, "down"], ["addr", "flush", "dev", old], ["set", old, "name", new],
                     ["set", new, "up"]):  # fmt: skip
            box.lab.run("box", ["ip", "link", *argv] if argv[0] == "set" else ["ip", *argv])
    shutil.rmtree(box.state_dir)
    box.state_dir.mkdir()
    box.start_daemon()
    wait_or_fail((box.state_dir / "keys" / "web.crt").exists, 30, "the web UI made its own certificate")
    before = files(box)
    for _ in range(60):  # until the new box has settled (bounded)
        time.sleep(1.0)
        if (now := files(box)) == before:
            break
        before = now
    before_records = records(box)

    refused = box.mamori("backup", "restore", "--yes", str(usb / "box.mbk"), stdin=PASS + "\n", check=False)
    assert refused.returncode == 1
    assert "wan0, lan0, guest0, dev0" in refused.stderr and "enp1s0, enp2s0, enp3s0, enp4s0" in refused.stderr
    assert f"--ports {MAPPING}" in refused.stderr  # the real ports, in the order of the cables
    english = box.mamori("--lang", "en", "backup", "restore", "--yes", str(usb / "box.mbk"),
                         stdin=PASS + "\n", check=False)  # fmt: skip
    assert english.returncode == 1 and "not on this box" in english.stderr
    wrong = box.mamori("backup", "restore", "--yes", "--ports", MAPPING.replace("enp4s0", "enp9s0"),
                       str(usb / "box.mbk"), stdin=PASS + "\n", check=False)  # fmt: skip
    assert wrong.returncode == 1 and "enp9s0 はこの機械にないポート" in wrong.stderr
    # three refusals, not a byte written
    assert files(box) == before and records(box) == before_records and not box.config.exists()

    restored = box.mamori("backup", "restore", "--yes", "--ports", MAPPING, str(usb / "box.mbk"),
                          stdin=PASS + "\n", check=False)  # fmt: skip
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "+- name: enp1s0" in restored.stdout  # the diff, shown before the swap
    assert "ほかに実行するコマンドはありません" in restored.stdout

    # No further command: the firewall names the new ports, the VPN has its old peer, DHCP the new port.
    rules = json.dumps(ruleset(box.lab))
    assert '"enp2s0"' in rules and '"enp1s0"' in rules and '"lan0"' not in rules and '"wan0"' not in rules
    wait_or_fail(lambda: peers(box, ifname) == old_peers, 30, "the restored VPN peers")
    dnsmasq = (box.state_dir / "run" / "dnsmasq.conf").read_text()
    assert "interface=enp2s0" in dnsmasq and "except-interface=enp1s0" in dnsmasq and "lan0" not in dnsmasq
    wait_or_fail(
        lambda: box.lab.ping("emr", "192.168.10.1"), 15, "emr pings the box through the renamed port"
    )
    assert "name: enp2s0" in box.config.read_text()
    # The running daemon was told (SIGHUP), re-applied the restored revision and is still up.
    assert box.daemon is not None and box.daemon.poll() is None
    history = box.mamori("config", "history").stdout
    assert "復元（ポート対応: wan0→enp1s0, lan0→enp2s0, guest0→enp3s0, dev0→enp4s0）" in history
    assert "改ざんされていません" in box.mamori("audit", "verify").stdout
