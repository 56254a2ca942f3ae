"""The clinic hears, through its real notification channel (a webhook receiver on loopback here), when
its vendor connects and when a VPN login is locked; doctors' ordinary sign-ins are not news; nothing is
sent twice, and a restarted daemon does not replay history. The notices go through the outbox: written
with the cursor's move, delivered by the channel's sender."""

from __future__ import annotations

from pathlib import Path

from appliance.audit import AuditLog
from appliance.notify import channels
from appliance.notify.outbox import Outbox
from appliance.notify.worker import ChannelSender
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from tests.timetravel import next_jst
from tests.unit.test_notify_channels import cert_dir, cfg_with, http_rx, webhook_cfg  # noqa: F401  (fixtures)
from vpn.notices import VpnNoticeWorker
from vpn.windows import WindowStore

JST_1400 = next_jst(14)  # tomorrow 14:00 in Asia/Tokyo: a window may not be approved in the past


def test_vendor_connection_and_lockout_are_sent_once(tmp_path: Path, http_rx) -> None:  # noqa: F811
    base, got = http_rx
    cfg = cfg_with({"webhook": webhook_cfg(base + "/hook")})
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    ctx = Context(paths=paths, db=db)
    audit = AuditLog(db, paths.keys_dir / "audit.key")
    audit.record("vendor-a", "vpn.signin", {"window": None}, source="vpn")  # before the worker's first run
    worker = VpnNoticeWorker(ctx, cfg)
    sender = ChannelSender(channels(cfg, paths.keys_dir)[0], Outbox(db))
    assert worker.step() == [] and sender.step() == 0 and got == [], "history is not news"

    window = WindowStore(db).approve("vendor-a", JST_1400 - 60, JST_1400 + 3 * 3600, "電子カルテ更新",
                                     ["電子カルテ"], "院長")  # fmt: skip
    audit.record("yamada", "vpn.signin", {"window": None}, source="vpn")
    audit.record("vendor-a", "vpn.signin", {"window": window.id}, source="vpn")
    audit.record("yamada", "vpn.user.locked", {"device": "phone"}, source="vpn")
    audit.record("incho", "config.apply", {"revision": 2}, source="cli")
    with db.connection() as conn:  # the entries' times, as the portal would have written them at 14:00
        conn.execute("UPDATE audit SET ts = ? WHERE action LIKE 'vpn.%'", (JST_1400,))
    sent = worker.step()
    assert sender.step() == 2
    assert [m.subject for m in sent] == [
        f"【Mamori】保守業者が接続しました（{cfg.clinic.name}）",
        f"【Mamori】VPN のログインをロックしました（{cfg.clinic.name}）",
    ]
    vendor, locked = sent
    assert "○○メディカル保守（vendor-a）が 14:00 に遠隔保守のため接続しました" in vendor.body
    assert "電子カルテ更新（対象: 電子カルテ）。17:00 に自動で切断されます" in vendor.body
    assert "山田 院長（yamada）の VPN ログインが" in locked.body and locked.severity == 1
    assert len(got) == 2 and all(g["path"] == "/hook" for g in got)
    assert "保守業者が接続しました" in str(got[0]["body"]) and got[0]["body"]["kind"] == "vpn"

    assert worker.step() == [] and sender.step() == 0, "sent once"
    assert VpnNoticeWorker(ctx, cfg).step() == [], "a restarted daemon does not send it again"
    assert sender.step() == 0 and len(got) == 2
