"""The outbox against a real webhook receiver on loopback that is down, answers 500, then comes up, with a
fake clock: a message is written before it is sent, retried with back-off (30 s doubling to 15 min) under
the same id, delivered once, expired after 24 hours, pruned after 30 days; a channel failing for more than
10 minutes is reported in Japanese."""

from __future__ import annotations

import socket
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.clock import wall
from appliance.notify import Message, WebhookChannel
from appliance.notify.outbox import Outbox, backoff, trouble_text, troubles
from appliance.notify.worker import ChannelSender
from appliance.storage import Database
from tests.unit.test_notify_channels import (  # noqa: F401
    HTTP_S,
    cert_dir,
    cfg_with,
    https_server,
    trust,
    webhook_cfg,
)


class Receiver:
    """An HTTPS webhook receiver on a fixed loopback port that can be down, failing (HTTP 500) or up."""

    def __init__(self, cert: Path) -> None:
        self.cert = cert
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.got: list[dict] = []
        self.failing = 0  # answer 500 this many times
        self.srv: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rx.got.append({"key": self.headers.get("Idempotency-Key"), "body": body})
                status = 500 if rx.failing > 0 else 200
                rx.failing -= 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.srv = https_server(Handler, self.cert, self.port)

    def down(self) -> None:
        if self.srv is not None:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None


@pytest.fixture
def rx(cert_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    trust(monkeypatch, cert_dir)
    r = Receiver(cert_dir)
    yield r
    r.down()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "m.db")
    d.migrate()
    return d


def row(db: Database) -> sqlite3.Row:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM notify_outbox").fetchone()


def test_backoff_doubles_from_30_seconds_to_15_minutes() -> None:
    assert [backoff(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 900, 900, 900]


def test_written_before_sent_retried_with_backoff_delivered_once(db: Database, rx: Receiver) -> None:
    now = [wall()]
    clock = lambda: now[0]  # noqa: E731
    outbox = Outbox(db, clock)
    channel = WebhookChannel(cfg_with({"webhook": webhook_cfg(rx.url)}).notifications.webhook, timeout=HTTP_S)
    msg = Message("件名", "本文", 1)
    outbox.put(msg, ["webhook"])
    assert (row(db)["state"], row(db)["attempts"]) == ("pending", 0), "in the database before any attempt"

    sender = ChannelSender(channel, outbox, mono=clock)
    waits = []
    for _ in range(7):  # receiver down: 30, 60, 120 ... 900 s
        assert sender.step() == 0
        r = row(db)
        waits.append(r["next_try"] - now[0])
        assert r["error"] == "接続できません"
        now[0] += waits[-1] - 1
        assert sender.step() == 0 and row(db)["attempts"] == r["attempts"], "not before its time"
        now[0] += 1
    assert waits == [30, 60, 120, 240, 480, 900, 900]

    rx.up()
    rx.failing = 2  # the receiver answers 500 twice, then takes it
    for _ in range(2):
        assert sender.step() == 0
        now[0] += 900
    sender = ChannelSender(channel, Outbox(db, clock), mono=clock)  # and the daemon restarted meanwhile
    assert sender.step() == 1
    assert sender.step() == 0
    assert row(db)["state"] == "delivered" and row(db)["attempts"] == 10
    assert [g["key"] for g in rx.got] == [msg.id] * 3, "every attempt under the same Idempotency-Key"
    assert len({g["body"] for g in rx.got}) == 1, "byte for byte the same body"


def test_a_clock_stepped_days_ahead_does_not_expire_a_message_at_its_first_failure(db: Database) -> None:
    now = [wall()]
    outbox = Outbox(db, lambda: now[0])
    outbox.put(Message("件名", "本文", 1), ["webhook"])
    (entry,) = outbox.due("webhook")
    now[0] += 3 * 86400  # NTP carries a late Pi forward by three days
    assert outbox.failed(entry, OSError("接続できません")) > 0 and row(db)["state"] == "pending"


def test_expired_after_a_day_reported_then_pruned(db: Database, rx: Receiver) -> None:
    now = [wall()]
    clock = lambda: now[0]  # noqa: E731
    outbox = Outbox(db, clock)
    channel = WebhookChannel(cfg_with({"webhook": webhook_cfg(rx.url)}).notifications.webhook, timeout=HTTP_S)
    outbox.put(Message("件名", "本文", 1), ["webhook"])
    sender = ChannelSender(channel, outbox, mono=clock)
    assert troubles(db, now[0]) == [], "a message that just failed once is not yet trouble"
    sender.step()
    now[0] += 601
    assert trouble_text(troubles(db, now[0])) == "通知を送れていません（Webhook: 接続できません）"
    while row(db)["state"] == "pending":
        now[0] += 900
        sender.step()
    assert row(db)["state"] == "expired" and 86400 <= row(db)["done"] - row(db)["created"] < 86400 + 900
    attempts = row(db)["attempts"]
    now[0] += 3600
    rx.up()
    assert sender.step() == 0 and rx.got == [] and row(db)["attempts"] == attempts, "given up on"
    (t,) = troubles(db, now[0])
    assert t.channel == "webhook" and t.expired == 1

    outbox.put(Message("次の件", "本文", 2), ["webhook"])
    assert sender.step() == 1
    assert troubles(db, now[0]) == [], "the channel delivers again"
    now[0] += 30 * 86400 - 3600 + 1
    assert outbox.prune() == 1, "the expired row is 30 days old; the delivered one is kept"
    now[0] += 3600
    assert outbox.prune() == 1


def test_clock_stepped_back_does_not_strand_a_message(db: Database, rx: Receiver) -> None:
    now = [wall()]
    outbox = Outbox(db, lambda: now[0])
    channel = WebhookChannel(cfg_with({"webhook": webhook_cfg(rx.url)}).notifications.webhook, timeout=HTTP_S)
    outbox.put(Message("件名", "本文", 1), ["webhook"])
    ChannelSender(channel, outbox, mono=lambda: now[0]).step()
    now[0] -= 7 * 86400  # a Raspberry Pi booted at its last saved time
    rx.up()
    assert ChannelSender(channel, outbox, mono=lambda: now[0]).step() == 1


def test_one_message_is_written_once_per_channel(db: Database) -> None:
    outbox = Outbox(db)
    msg = Message("件名", "本文", 1)
    assert outbox.put(msg, ["email", "webhook"]) == 2
    assert outbox.put(msg, ["email", "webhook"]) == 0
    assert outbox.cancel_unconfigured(["webhook"]) == 1
    assert [e.channel for e in outbox.due("email")] == [] and len(outbox.due("webhook")) == 1
