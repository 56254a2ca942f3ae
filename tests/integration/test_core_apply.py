"""Safe apply in the lab, with the real kernel: rollback, refusal, the confirm timer, a killed daemon,
a reconciling daemon and a tampered audit log."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from lab.box import Box
from lab.state import snapshot
from lab.waiting import wait_for

pytestmark = pytest.mark.integration


def changed_config(box: Box, **edits: object) -> Path:
    """Write a variant of the live config next to it and return its path (the live file stays as it is)."""
    data = yaml.safe_load(box.config.read_text(encoding="utf-8"))
    if edits.get("dev_address"):
        data["interfaces"][3]["address"] = edits["dev_address"]
    if edits.get("extra_rule"):
        data["firewall"]["rules"].append(edits["extra_rule"])
    if edits.get("extra_interface"):
        data["interfaces"].append(edits["extra_interface"])
    path = box.state_dir / f"candidate-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def statuses(box: Box) -> dict[int, str]:
    with sqlite3.connect(box.state_dir / "db" / "mamori.db") as conn:
        return dict(conn.execute("SELECT id, status FROM revisions"))


def test_apply_then_rollback_restores_previous_state(box: Box) -> None:
    before = snapshot(box.lab)
    assert before["addresses"]["dev0"] == ["192.168.30.1/24"]
    candidate = changed_config(
        box, dev_address="192.168.30.21/24", extra_rule={"src": "受付PC", "dst": "PACS", "service": "DICOM"}
    )
    box.mamori("config", "apply", "--file", str(candidate), "-m", "ゲストの変更")
    during = snapshot(box.lab)
    assert during["addresses"]["dev0"] == ["192.168.30.21/24"]
    assert during != before
    res = box.mamori("config", "rollback", "1")
    assert "リビジョン 1 の内容に戻しました" in res.stdout
    assert snapshot(box.lab) == before
    assert statuses(box) == {1: "superseded", 2: "superseded", 3: "applied"}
    history = box.mamori("config", "history").stdout
    assert "リビジョン 1 に戻す" in history


def test_refused_config_changes_nothing(box: Box) -> None:
    before = snapshot(box.lab)
    live_text = box.config.read_text(encoding="utf-8")
    candidate = changed_config(
        box,
        dev_address="192.168.30.22/24",
        extra_interface={
            "name": "eth9.40",
            "parent": "eth9",
            "vlan": 40,
            "zone": "mgmt",
            "address": "192.168.40.1/24",
        },
    )
    res = box.mamori("config", "apply", "--file", str(candidate), check=False)
    assert res.returncode == 1
    assert "親インターフェース eth9 がこの機器にありません" in res.stderr
    assert snapshot(box.lab) == before
    assert box.config.read_text(encoding="utf-8") == live_text
    assert statuses(box) == {1: "applied"}
    assert "config.apply_failed" in box.mamori("audit", "list").stdout


def test_engine_failure_midway_restores_what_was_already_changed(box: Box) -> None:
    """The kernel refuses VLAN 40 on lan0 after dev0's address was already changed: with 8021q because
    VLAN 40 is taken (made here), without it (as on this CI kernel) because VLANs are not supported."""
    box.lab.run(
        "box",
        ["ip", "link", "add", "link", "lan0", "name", "taken40", "type", "vlan", "id", "40"],
        check=False,
    )
    before = snapshot(box.lab)
    candidate = changed_config(
        box,
        dev_address="192.168.30.23/24",
        extra_interface={
            "name": "lan0.40",
            "parent": "lan0",
            "vlan": 40,
            "zone": "mgmt",
            "address": "192.168.40.1/24",
        },
    )
    res = box.mamori("config", "apply", "--file", str(candidate), check=False)
    assert res.returncode == 1, res.stdout
    assert "ネットワーク設定を反映できませんでした" in res.stderr
    assert snapshot(box.lab) == before
    assert statuses(box) == {1: "applied"}


def test_unconfirmed_apply_reverts_by_itself(box: Box) -> None:
    before = snapshot(box.lab)
    live_text = box.config.read_text(encoding="utf-8")
    candidate = changed_config(box, dev_address="192.168.30.24/24")
    res = box.mamori("config", "apply", "--file", str(candidate), "--confirm", "3")
    assert "3 秒以内に `mamori config confirm`" in res.stdout
    assert snapshot(box.lab)["addresses"]["dev0"] == ["192.168.30.24/24"]
    assert wait_for(lambda: statuses(box).get(2) == "reverted", timeout=20), statuses(box)
    assert snapshot(box.lab) == before
    assert statuses(box) == {1: "applied", 2: "reverted"}
    assert box.config.read_text(encoding="utf-8") == live_text
    assert "config.auto_revert" in box.mamori("audit", "list").stdout


def test_confirmed_apply_stays(box: Box) -> None:
    candidate = changed_config(box, dev_address="192.168.30.25/24")
    # The window leaves room for a second CLI process to start on a loaded machine (3.8 s was seen at load 16);
    # then the test waits past the window to see that the confirmed revision is not reverted.
    box.mamori("config", "apply", "--file", str(candidate), "--confirm", "12")
    assert "リビジョン 2 を確定しました" in box.mamori("config", "confirm").stdout
    time.sleep(13)
    assert statuses(box) == {1: "superseded", 2: "applied"}
    assert snapshot(box.lab)["addresses"]["dev0"] == ["192.168.30.25/24"]


def test_killed_daemon_leaves_policy_in_place(box: Box) -> None:
    box.start_daemon()
    live = snapshot(box.lab)
    assert any("table" in item and item["table"]["name"] == "mamori" for item in live["ruleset"]), (
        "the firewall table must be live"
    )
    os.kill(box.daemon.pid, signal.SIGKILL)
    box.daemon.wait(10)
    assert snapshot(box.lab) == live
    # The data plane still enforces the policy: the internet cannot open a connection into the clinic.
    box.lab.listen_tcp("emr", 8080)
    assert not box.lab.tcp_connect("attacker", "192.168.10.10", 8080)
    assert box.lab.tcp_connect("reception", "192.168.10.10", 8080)


def test_daemon_reconciles_at_start_and_stops_cleanly(box: Box) -> None:
    box.lab.run("box", ["nft", "delete", "table", "inet", "mamori"], check=False)
    box.lab.run("box", ["ip", "addr", "flush", "dev", "dev0"])
    box.start_daemon()
    assert snapshot(box.lab)["addresses"]["dev0"] == ["192.168.30.1/24"]
    assert "table inet mamori" in box.lab.run("box", ["nft", "list", "tables"]).stdout
    assert box.stop_daemon() == 0
    assert not (box.state_dir / "run" / "mamori.pid").exists()


def test_tampered_audit_entry_is_detected(box: Box) -> None:
    candidate = changed_config(box, dev_address="192.168.30.26/24")
    box.mamori("config", "apply", "--file", str(candidate), "-m", "二回目")
    ok = box.mamori("audit", "verify")
    assert "改ざんされていません" in ok.stdout
    with sqlite3.connect(box.state_dir / "db" / "mamori.db") as conn:
        conn.execute("UPDATE audit SET actor = 'intruder' WHERE id = 1")
    res = box.mamori("audit", "verify", check=False)
    assert res.returncode == 3
    assert "監査ログの 1 番目の記録が書き換えられています" in res.stdout


def test_first_apply_failing_late_leaves_the_box_fail_closed(lab, tmp_path: Path) -> None:
    """The WireGuard port is taken, so the VPN (applied after network and firewall) fails on a box's very
    first config: the firewall must end in the fail-closed policy, never without a table."""
    from lab.box import make_box

    box = make_box(lab, tmp_path / "state")
    blocker = lab.spawn("box", ["python3", "-c",
                                "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                "s.bind(('0.0.0.0',51820))\ntime.sleep(600)"])  # fmt: skip
    assert wait_for(lambda: ":51820 " in lab.run("box", ["ss", "-Hlun"]).stdout, timeout=10)
    res = box.mamori("config", "apply", check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    table = lab.run("box", ["nft", "list", "table", "inet", "mamori"], check=False)
    assert table.returncode == 0, "the firewall table must never be missing"
    assert "policy drop" in table.stdout and "set blocked4" not in table.stdout  # fail-closed, not full
    assert statuses(box) == {}
    assert not lab.ping("reception", "198.51.100.10")
    lab.stop(blocker)
