"""A channel that has not delivered for more than 10 minutes is said where people look: on the dashboard
and in `mamori ids status`; it disappears once the channel delivers again."""

from __future__ import annotations

import socket
from pathlib import Path

from appliance.cli import main
from appliance.notify import Message, WebhookChannel
from appliance.notify.outbox import Outbox
from appliance.notify.worker import ChannelSender
from appliance.storage import Database
from tests.unit.test_notify_channels import cfg_with, webhook_cfg
from tests.webui_fixtures import Box, box_fixture  # noqa: F401  (box_fixture: fixture)

EXPECTED = "通知を送れていません（Webhook: 接続できません）"


def fail_for_a_while(db: Database, at: float) -> None:
    """A real send to a closed loopback port, `at` (wall time): connection refused."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    outbox = Outbox(db, lambda: at)
    outbox.put(Message("件名", "本文", 1), ["webhook"])
    channel = WebhookChannel(
        cfg_with({"webhook": webhook_cfg(f"https://127.0.0.1:{port}/")}).notifications.webhook
    )
    assert ChannelSender(channel, outbox, mono=lambda: at).step() == 0


def test_ids_status_says_which_channel_cannot_deliver(tmp_path: Path, capsys) -> None:
    import time

    db = Database(tmp_path / "state" / "db" / "mamori.db")
    db.migrate()
    base = ["--config", str(tmp_path / "none.yaml"), "--state-dir", str(tmp_path / "state")]
    assert main([*base, "ids", "status"]) == 0
    assert "通知を送れていません" not in capsys.readouterr().out
    fail_for_a_while(db, time.time() - 5 * 60)
    main([*base, "ids", "status"])
    assert "通知を送れていません" not in capsys.readouterr().out, "5 minutes is not yet trouble"
    fail_for_a_while(db, time.time() - 11 * 60)
    main([*base, "ids", "status"])
    assert EXPECTED in capsys.readouterr().out
    main([*base, "--lang", "en", "ids", "status"])
    out = capsys.readouterr().out
    assert "notifications: webhook undelivered since" in out and "Connection refused" in out


def test_dashboard_warns_until_the_channel_delivers(box: Box) -> None:
    client = box.client()
    box.login(client, "staff")
    assert EXPECTED not in client.get("/").get_data(as_text=True)
    box.ctx.db.migrate()
    fail_for_a_while(box.ctx.db, box.clock.now - 11 * 60)
    page = client.get("/").get_data(as_text=True)
    assert EXPECTED in page and "つながりしだい送ります" in page
    with box.ctx.db.connection() as conn:
        conn.execute("UPDATE notify_outbox SET state = 'delivered', done = ?", (box.clock.now,))
    assert EXPECTED not in client.get("/").get_data(as_text=True)
