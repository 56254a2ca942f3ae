"""Notifications through the real `mamori daemon` in the lab (issue 20.1): incidents come in the real way
(EVE alert lines appended to the eve.json the daemon reads), the clinic's webhook receiver runs on the box
namespace's loopback (HTTPS, test certificate, allow_private).

(a) The receiver is down for 20 s, then up: every message arrives, exactly once by Idempotency-Key, each
    with a signature that verifies under keys/webhook.key.
(b) The daemon is killed with SIGKILL while 20 incidents wait for min_interval: after it starts again, all
    20 are sent (before the outbox, they were lost with the process's memory).
Back-off is shortened by configuration (retry_after: 2s) to keep the run bounded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from lab.box import EXAMPLE_CONFIG, Box, make_box
from lab.topology import Lab
from lab.waiting import wait_for
from tests import notify_receiver as receiver

pytestmark = pytest.mark.integration

PORT = 18443


def setup_box(lab: Lab, tmp: Path, min_interval: str) -> tuple[Box, Path, Path, Path]:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["ids"]["enabled"] = False  # the EVE ingest still reads eve.json; spares the 2 cores
    data["ids"]["auto_block"]["enabled"] = False
    data["notifications"] = {
        "webhook": {"url": f"https://127.0.0.1:{PORT}/hook", "allow_private": True},
        "min_interval": min_interval,
        "retry_after": "2s",
        "daily_digest": False,
    }
    box = make_box(lab, tmp / "state", yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    cert, key = receiver.make_cert(tmp / "hook")
    box.entry = receiver.entry(cert)
    box.mamori("config", "apply", "-m", "通知の試験")
    return box, cert, key, tmp / "received.jsonl"


def eve_alert(n: int) -> str:
    ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    return json.dumps({
        "timestamp": ts, "flow_id": 1000 + n, "in_iface": "wan0", "event_type": "alert",
        "src_ip": f"198.51.100.{n}", "src_port": 40000 + n, "dest_ip": "203.0.113.2", "dest_port": 3389,
        "proto": "TCP", "alert": {"action": "allowed", "gid": 1, "signature_id": 1990001, "rev": 1,
        "signature": "MAMORI RDP connection attempt from the internet",
        "category": "Attempted Administrator Privilege Gain", "severity": 1},
    })  # fmt: skip


def append_alerts(box: Box, numbers: range) -> None:
    eve = box.state_dir / "run" / "suricata" / "log" / "eve.json"
    eve.parent.mkdir(parents=True, exist_ok=True)
    with eve.open("a", encoding="utf-8") as f:
        f.write("".join(eve_alert(n) + "\n" for n in numbers))


def db_rows(box: Box, sql: str) -> list[tuple]:
    conn = sqlite3.connect(box.state_dir / "db" / "mamori.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def signed(box: Box, got: dict) -> bool:
    secret = (box.state_dir / "keys" / "webhook.key").read_text().strip().encode()
    expected = "sha256=" + hmac.new(secret, got["body"].encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, got["sig"] or "")


def test_receiver_down_then_up_gets_every_message_once(lab: Lab, tmp_path: Path) -> None:
    box, cert, key, out = setup_box(lab, tmp_path, "1s")
    box.start_daemon()
    try:
        for batch in (range(10, 12), range(20, 22), range(30, 31)):  # three messages, a few seconds apart
            append_alerts(box, batch)
            time.sleep(2.5)
        assert wait_for(lambda: db_rows(box, "SELECT COUNT(*) FROM notify_outbox")[0][0] >= 3, 20)
        time.sleep(max(0.0, 20 - 7.5))  # the receiver stays down for about 20 s
        assert receiver.received(out) == []
        failed = db_rows(box, "SELECT COUNT(*) FROM notify_outbox WHERE attempts > 0 AND state = 'pending'")
        assert failed[0][0] >= 1, "tried while the receiver was down, kept for later"
        lab.spawn("box", receiver.argv(PORT, out, cert, key))
        total = db_rows(box, "SELECT COUNT(DISTINCT msg_id) FROM notify_outbox")[0][0]
        assert wait_for(lambda: len(receiver.received(out)) >= total, 60), receiver.received(out)
        time.sleep(3)  # a duplicate would arrive now
        got = receiver.received(out)
        keys = [g["key"] for g in got]
        assert len(keys) == len(set(keys)) == total, keys
        assert {json.loads(g["body"])["id"] for g in got} == set(keys)
        assert all(signed(box, g) for g in got)
        text = "".join(json.loads(g["body"])["text"] for g in got)
        assert all(f"198.51.100.{n}" in text for n in (10, 11, 20, 21, 30)), text
        assert db_rows(box, "SELECT DISTINCT state FROM notify_outbox") == [("delivered",)]
    finally:
        box.stop_daemon()
    log = (box.state_dir / "daemon.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_sigkill_while_twenty_incidents_wait_loses_none(lab: Lab, tmp_path: Path) -> None:
    box, cert, key, out = setup_box(lab, tmp_path, "30s")
    lab.spawn("box", receiver.argv(PORT, out, cert, key))
    box.start_daemon()
    append_alerts(box, range(1, 2))
    assert wait_for(lambda: len(receiver.received(out)) == 1, 30), "the first incident is sent at once"
    append_alerts(box, range(100, 120))
    pending = "SELECT COUNT(*) FROM notify_pending"
    assert wait_for(lambda: db_rows(box, pending)[0][0] == 20, 20), "20 incidents wait for min_interval"
    os.kill(box.daemon.pid, signal.SIGKILL)
    box.daemon.wait(10)
    box.daemon = None
    assert len(receiver.received(out)) == 1
    box.start_daemon()
    try:
        assert wait_for(lambda: len(receiver.received(out)) == 2, 60), receiver.received(out)
        body = json.loads(receiver.received(out)[1]["body"])
        assert "ほか19件" in body["subject"]
        assert all(f"198.51.100.{n} " in body["text"] for n in range(100, 120)), body["text"]
        assert db_rows(box, pending)[0][0] == 0
        time.sleep(3)
        assert len(receiver.received(out)) == 2, "nothing sent twice"
    finally:
        box.stop_daemon()
