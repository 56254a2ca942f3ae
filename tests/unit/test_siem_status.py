"""`mamori siem status` and the metrics of the SIEM forwarder, in both languages, from a box's state: what
rsyslogd's counters say (impstats, its real line format), what waits in the spool, whether the collector
answers (a closed port on loopback: it does not)."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import yaml
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest

from appliance.revisions import RevisionStore
from appliance.subsystem import Context
from lab.syslog_collector import make_pki
from metrics.collect import MamoriCollector
from siem.cli import cmd_status, lines_en, lines_ja
from siem.render import SiemPaths
from siem.spool import Spool
from siem.status import siem_state
from tests.unit.test_firewall_helpers import example_dict


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


def live(ctx: Context, tmp_path: Path, port: int) -> None:
    data = example_dict()
    data["siem"] = {"enabled": True, "collector": "siem.example.jp", "port": port, "box_id": "clinic-9",
                    "collector_ca": make_pki(tmp_path / "pki", names=["siem.example.jp"]).ca_cert.read_text()}  # fmt: skip
    text = yaml.safe_dump(data, allow_unicode=True)
    with ctx.db.transaction() as conn:
        RevisionStore(ctx.db).add(conn, text, "admin", "cli", "", "", "applied")
    sp = SiemPaths.of(ctx.paths)
    sp.root.mkdir(parents=True, exist_ok=True)
    sp.stats.write_text(
        'Sun Dec  6 18:47:21 2026: { "name": "siem-fwd", "origin": "core.action", "processed": 41 }\n'
        'Sun Dec  6 18:47:21 2026: { "name": "siem-fwd queue", "origin": "core.queue", "size": 7 }\n'
    )
    Spool(sp.spool, sp.work).append(['<110>1 - b mamori - audit [mamori@32473 box="b" event="audit-1"] x'])


def test_status_says_what_waits_and_that_the_collector_is_away(ctx: Context, tmp_path: Path, capsys) -> None:
    live(ctx, tmp_path, closed_port())
    code = cmd_status(argparse.Namespace(json=True, lang="ja"), ctx)
    st = json.loads(capsys.readouterr().out)
    assert code == 1  # rsyslogd not running, collector not answering: a monitoring check sees it
    assert (st["enabled"], st["running"], st["reachable"], st["queued"], st["sent"]) == (
        True,
        False,
        False,
        7,
        41,
    )
    assert st["spool_unread_bytes"] > 0
    cfg_state = siem_state(ctx, _cfg(ctx), probe_timeout=0)
    ja, en = "\n".join(lines_ja(cfg_state)), "\n".join(lines_en(cfg_state))
    assert "送信待ち: 7 件" in ja and "止まっています" in ja and "未確認" in ja
    assert "queued in rsyslogd: 7 messages" in en and "NOT running" in en


def test_off_is_said_plainly(ctx: Context, tmp_path: Path, capsys) -> None:
    with ctx.db.transaction() as conn:
        RevisionStore(ctx.db).add(conn, yaml.safe_dump(example_dict()), "admin", "cli", "", "", "applied")
    assert cmd_status(argparse.Namespace(json=False, lang="ja"), ctx) == 0
    assert "無効" in capsys.readouterr().out
    assert cmd_status(argparse.Namespace(json=False, lang="en"), ctx) == 0
    assert "disabled" in capsys.readouterr().out


def test_metrics_show_the_queue(ctx: Context, tmp_path: Path) -> None:
    live(ctx, tmp_path, closed_port())
    registry = CollectorRegistry()
    registry.register(MamoriCollector(ctx))
    text = generate_latest(registry).decode()
    assert "mamori_siem_enabled 1.0" in text and "mamori_siem_queue_messages 7.0" in text
    assert 'mamori_metrics_section_ok{section="siem"} 1.0' in text


def _cfg(ctx: Context):
    from appliance.config.load import parse_config

    return parse_config(RevisionStore(ctx.db).live().config_text).model
