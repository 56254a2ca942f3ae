"""A box that dies and is restored from its backup is the same box: the same firewall ruleset (with the
blocked addresses), the same WireGuard peers, the same users and an intact audit chain — and the doctor's
old client config connects again. The real daemon, the real `mamori` commands, real wireguard-go."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from lab.box import Box
from lab.state import ruleset
from lab.waiting import wait_or_fail
from vpn.client import parse_client_conf, up_client

pytestmark = pytest.mark.integration
PASS = "shinryoujo no kagi wa hikidashi ni"


def without_element_timeouts(rules: list) -> list:
    """A re-seeded block keeps its expiry moment, so its `timeout` is the time it had left: compare the
    addresses here, the remaining time separately."""
    text = json.dumps(rules)
    return json.loads(re.sub(r', "timeout": \d+', "", text))


def peers(box: Box) -> dict[str, str]:
    ifname = box.config.read_text().split("interface: ", 1)[1].split()[0]
    dump = box.lab.run("box", ["wg", "show", ifname, "dump"]).stdout.splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[3] for line in dump}  # public key -> allowed ips


def users(box: Box) -> list[tuple]:
    with sqlite3.connect(box.state_dir / "db" / "mamori.db") as conn:
        devices = conn.execute(
            "SELECT user, device, public_key, ip4, ip6 FROM vpn_devices ORDER BY id"
        ).fetchall()
        creds = conn.execute(
            "SELECT user, password_hash, totp_secret FROM vpn_credentials ORDER BY user"
        ).fetchall()
    return devices + creds


def test_backup_wipe_restore_gives_the_same_box(box: Box, tmp_path: Path) -> None:
    box.start_daemon()
    added = box.mamori("vpn", "add", "yamada", "自宅PC", "--out", str(tmp_path / "doctor"),
                       "--password-stdin", stdin="Kanja-no-Himitsu-2026\n")  # fmt: skip
    assert added.returncode == 0
    conf_text = next((tmp_path / "doctor").glob("*.conf")).read_text()
    box.mamori("fw", "block", "198.51.100.66", "--reason", "テスト")
    wait_or_fail(lambda: len(peers(box)) == 1, 20, "one VPN peer before the backup")
    before = {"ruleset": ruleset(box.lab), "peers": peers(box), "users": users(box)}
    assert "198.51.100.66" in str(before["ruleset"])
    box.mamori("backup", "set-passphrase", stdin=PASS + "\n")
    usb = tmp_path / "usb"
    usb.mkdir()
    box.mamori("backup", "create", "--out", str(usb / "box.mbk"))

    # The SD card dies: daemon gone, kernel state gone, state directory and config gone.
    box.stop_daemon()
    ifname = box.config.read_text().split("interface: ", 1)[1].split()[0]
    box.lab.run("box", ["ip", "link", "del", ifname], check=False)
    box.lab.run("box", ["nft", "delete", "table", "inet", "mamori"])
    shutil.rmtree(box.state_dir)
    box.state_dir.mkdir()

    restored = box.mamori("backup", "restore", "--yes", str(usb / "box.mbk"), stdin=PASS + "\n")
    assert "のバックアップを復元し、設定を反映しました" in restored.stdout
    box.start_daemon()
    wait_or_fail(lambda: len(peers(box)) == 1, 30, "the VPN peer back after the restore")
    after = {"ruleset": ruleset(box.lab), "peers": peers(box), "users": users(box)}
    left = re.search(r'"198\.51\.100\.66", "timeout": (\d+)', json.dumps(after["ruleset"]))
    assert left and 86400 - 300 < int(left.group(1)) <= 86400  # the block runs out when it would have
    for snap in (before, after):
        snap["ruleset"] = without_element_timeouts(snap["ruleset"])
    assert after == before
    assert "改ざんされていません" in box.mamori("audit", "verify").stdout

    # The doctor's PC still has its old config: it connects and reaches the box's sign-in portal.
    conf = parse_client_conf(conf_text)
    up_client(conf, f"wgd{box.lab.wg_name()[2:9]}", tmp_path, netns=box.lab.ns("doctor"))
    wait_or_fail(
        lambda: box.lab.tcp_connect("doctor", "10.99.0.1", 8443), 30, "the doctor reaches the portal"
    )
