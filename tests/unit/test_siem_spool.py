"""The hand-off to rsyslogd: cursors per source, the spool, recovery after a crash between the two, the
severity filter, the spool budget, pruning of files rsyslogd has read (its real imfile state format)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from appliance.audit import AuditLog
from appliance.clock import wall
from appliance.config.load import parse_config
from appliance.subsystem import Context
from lab.syslog_collector import make_pki
from siem.events import parse_event_id
from siem.render import SiemPaths
from siem.spool import FRAGMENT, Spool
from siem.stats import parse_stats
from siem.worker import SpoolWorker, read_cursors
from tests.unit.test_firewall_helpers import example_dict


def config(tmp_path: Path, **siem) -> object:
    data = example_dict()
    ca = make_pki(tmp_path / "pki", names=["siem.example.jp"]).ca_cert.read_text()
    data["siem"] = {"enabled": True, "collector": "siem.example.jp", "collector_ca": ca, "box_id": "clinic-1",
                    **siem}  # fmt: skip
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


def add_alert(ctx: Context, severity: int, signature: str = "ET TEST") -> int:
    with ctx.db.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO ids_alerts(ts, sid, rev, signature, category, severity, src_ip, src_port, dest_ip,"
            " dest_port, proto) VALUES (?, 1, 1, ?, 'c', ?, '198.51.100.66', 1, '192.168.10.10', 80, 'TCP')",
            (wall(), signature, severity),
        )
        return int(cur.lastrowid)


def add_incident(ctx: Context) -> int:
    with ctx.db.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO ids_incidents(sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category) VALUES (1, '198.51.100.66', '192.168.10.10', ?, ?, 1, 1, 'ET SCAN', 'c')",
            (wall(), wall()),
        )
        return int(cur.lastrowid)


def spooled(ctx: Context) -> list[str]:
    sp = SiemPaths.of(ctx.paths)
    out = []
    for path in Spool(sp.spool, sp.work).files():
        out += [f"{s}-{n}" for s, n in filter(None, map(parse_event_id, path.read_text().splitlines()))]
    return out


def test_starts_at_now_then_spools_every_new_record_once(ctx: Context, tmp_path: Path) -> None:
    audit = AuditLog(ctx.db)
    audit.record("admin", "before.enabled")
    add_alert(ctx, 1)
    worker = SpoolWorker(ctx, config(tmp_path))
    worker.start()
    assert spooled(ctx) == []  # history before switching on is not sent
    a = audit.record("admin", "config.apply", {"revision": 2})
    inc = add_incident(ctx)
    high = add_alert(ctx, 1)
    add_alert(ctx, 3)  # low: below siem.min_alert_severity (high)
    worker.step()
    worker.step()
    assert sorted(spooled(ctx)) == sorted([f"audit-{a}", f"incident-{inc}", f"alert-{high}"])
    assert read_cursors(ctx)["alert"] == high + 1  # the low alert was looked at, not sent


def test_medium_severity_includes_medium_alerts(ctx: Context, tmp_path: Path) -> None:
    worker = SpoolWorker(ctx, config(tmp_path, min_alert_severity="medium"))
    worker.start()
    ids = [add_alert(ctx, s) for s in (1, 2, 3)]
    worker.step()
    assert spooled(ctx) == [f"alert-{ids[0]}", f"alert-{ids[1]}"]


def test_a_crash_between_spool_and_cursor_neither_loses_nor_repeats(ctx: Context, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = SpoolWorker(ctx, cfg)
    first.start()
    audit = AuditLog(ctx.db)
    ids = [audit.record("admin", f"a.{i}") for i in range(3)]
    events, _after = first.collect()
    from siem.events import format_line

    first.spool.append([format_line(e, "clinic-1") for e in events])  # on disk; the cursor never moved
    again = SpoolWorker(ctx, cfg)
    again.start()
    more = audit.record("admin", "a.more")
    again.step()
    assert spooled(ctx) == [f"audit-{i}" for i in [*ids, more]]


def test_a_half_written_line_is_ended_marked_and_its_event_spooled_again(
    ctx: Context, tmp_path: Path
) -> None:
    cfg = config(tmp_path)
    worker = SpoolWorker(ctx, cfg)
    worker.start()
    entry = AuditLog(ctx.db).record("admin", "x")
    events, _ = worker.collect()
    from siem.events import format_line

    line = format_line(events[0], "clinic-1")
    sp = SiemPaths.of(ctx.paths)
    sp.spool.mkdir(parents=True, exist_ok=True)
    (sp.spool / "000000001.spool").write_text(line[: len(line) - 5])  # died mid-write
    again = SpoolWorker(ctx, cfg)
    again.start()
    again.step()
    lines = (sp.spool / "000000001.spool").read_text().splitlines()
    assert lines[0].endswith(FRAGMENT) and lines[1] == line
    assert (
        spooled(ctx).count(f"audit-{entry}") == 2
    )  # the collector sees the marked fragment and the whole line


def test_budget_pauses_and_nothing_is_lost(ctx: Context, tmp_path: Path) -> None:
    worker = SpoolWorker(ctx, config(tmp_path))
    worker.start()
    worker.budget = 1  # any spool content is over budget
    audit = AuditLog(ctx.db)
    a1 = audit.record("admin", "one")
    worker.step()
    a2 = audit.record("admin", "two")
    worker.step()  # paused: the spool is over its budget
    assert spooled(ctx) == [f"audit-{a1}"]
    worker.budget = 1 << 30
    worker.step()
    assert spooled(ctx) == [f"audit-{a1}", f"audit-{a2}"]


def test_rotation_and_pruning_by_imfile_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", tmp_path / "work", rotate_bytes=100)
    for i in range(3):
        spool.append([f'<110>1 - b mamori - audit [mamori@32473 box="b" event="audit-{i}"] ' + "x" * 100])
    files = spool.files()
    assert [p.name for p in files] == ["000000001.spool", "000000002.spool", "000000003.spool"]
    (tmp_path / "work").mkdir()
    # rsyslog 8.2302's imfile state file, as it writes it
    state = {
        "filename": str(files[0]),
        "prev_was_nl": 0,
        "curr_offs": files[0].stat().st_size,
        "strt_offs": 0,
    }
    (tmp_path / "work" / "imfile-state:123").write_text(json.dumps(state))
    (tmp_path / "work" / "imfile-state:124").write_text('{"filename": ')  # being rewritten: skipped
    assert spool.unread_bytes() == files[1].stat().st_size + files[2].stat().st_size
    assert spool.prune() == 1
    assert [p.name for p in spool.files()] == ["000000002.spool", "000000003.spool"]
    assert spool.recover() == {"audit": 2}


def test_stats_of_the_real_impstats_format() -> None:
    text = (
        'Sun Dec  6 18:47:21 2026: { "name": "siem-fwd", "origin": "core.action", "processed": 12, "failed": 0,'
        ' "suspended": 1, "suspended.duration": 30, "resumed": 1 }\n'
        'Sun Dec  6 18:47:21 2026: { "name": "siem-fwd queue[DA]", "origin": "core.queue", "size": 40 }\n'
        'Sun Dec  6 18:47:21 2026: { "name": "siem-fwd queue", "origin": "core.queue", "size": 7 }\n'
        "Sun Dec  6 18:47:21 2026: { broken\n"
    )
    st = parse_stats(text)
    assert (st.processed, st.suspended, st.depth, st.bad_lines, st.seen) == (12, 1, 47, 1, True)
