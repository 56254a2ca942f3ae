"""Months, the SVG chart, the report's numbers from a real state database (no kernel needed: config
revisions, real Suricata EVE alerts through the IDS ingestion, maintenance windows), and the scheduled
worker with a fake clock."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.audit import AuditLog
from appliance.config.load import parse_config
from appliance.revisions import RevisionStore
from appliance.subsystem import Context
from ids.eve_reader import EveReader
from ids.ingest import AlertIngest
from reports.charts import bar_chart
from reports.daemon import MonthlyReportWorker
from reports.gather import gather_snapshot
from reports.month_data import MonthError, gather_month, parse_month, previous_month
from reports.monthly import context, has_report, render_month
from vpn.windows import WindowStore

REPO = Path(__file__).resolve().parents[2]
EVE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"
TOKYO = ZoneInfo("Asia/Tokyo")


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=TOKYO).timestamp()


MONTHS = [
    ("2026-11", "2026-11-01T00:00", "2026-12-01T00:00", 30),
    ("2026-12", "2026-12-01T00:00", "2027-01-01T00:00", 31),
    ("2028-02", "2028-02-01T00:00", "2028-03-01T00:00", 29),
    (" 2027-01 ", "2027-01-01T00:00", "2027-02-01T00:00", 31),
]


@pytest.mark.parametrize(("text", "start", "end", "days"), MONTHS)
def test_months_are_clinic_local(text: str, start: str, end: str, days: int) -> None:
    m = parse_month(text, "Asia/Tokyo")
    assert (m.start, m.end, m.days, m.label) == (ts(start), ts(end), days, text.strip())


@pytest.mark.parametrize("bad", ["2026-13", "2026/11", "11-2026", "", "2026-1x"])
def test_bad_months_are_refused_in_both_languages(bad: str) -> None:
    with pytest.raises(MonthError) as err:
        parse_month(bad, "Asia/Tokyo")
    assert "YYYY-MM" in err.value.text("ja") and "YYYY-MM" in err.value.text("en")


def test_previous_month_turns_the_year_in_clinic_time() -> None:
    # 2027-01-01 00:30 in Tokyo is still 2026-12-31 in UTC: the clinic's calendar decides.
    assert previous_month(ts("2027-01-01T00:30"), "Asia/Tokyo").label == "2026-12"
    assert previous_month(ts("2026-12-01T00:00"), "Asia/Tokyo").label == "2026-11"


def test_chart_has_a_bar_per_nonzero_day_and_escapes_text() -> None:
    svg = bar_chart([0, 3, 0, 7], ["1", "2", "3", "4"], "検知 <script>")
    assert svg.count("<rect") == 2 and "<script>" not in svg and "&lt;script&gt;" in svg
    assert "最大 7件/日" in svg
    with pytest.raises(ValueError):
        bar_chart([1, 2], ["1"], "x")


def _apply_revision(ctx: Context, text: str, comment: str) -> dt.datetime:
    """What ConfigService.apply records after the engines took the config (the engines need root); returns
    the revision's time in Tokyo: the month the box was set up in is that one, not the clock read before or
    after (a month can turn in between, as under MAMORI_TEST_NOW=2027-12-31T23:59:30+09:00)."""
    with ctx.db.transaction() as conn:
        rev = RevisionStore(ctx.db).add(conn, text, "院長", "web", comment, "", "applied")
        AuditLog(ctx.db).record(
            "院長", "config.apply", {"revision": rev.id, "comment": comment}, "web", conn=conn
        )
    return dt.datetime.fromtimestamp(rev.created_at, TOKYO)


def _ingest_fixture(ctx: Context, cfg_text: str) -> None:
    eve = ctx.paths.state_dir / "eve.json"
    shutil.copy(EVE, eve)
    ingest = AlertIngest(parse_config(cfg_text).model)
    reader = EveReader(ctx.db, eve, sink=ingest.sink, on_commit=ingest.on_commit)
    reader.poll()
    reader.close()


def test_report_numbers_equal_the_database(ctx: Context, time_machine) -> None:
    first_alert = min(json.loads(line)["timestamp"] for line in EVE.read_text().splitlines()
                      if '"event_type":"alert"' in line)  # fmt: skip
    when = dt.datetime.fromisoformat(first_alert).astimezone(TOKYO)
    month = parse_month(when.strftime("%Y-%m"), "Asia/Tokyo")
    # The real EVE capture has fixed times: the box lives in that month, set up before the first alert.
    time_machine.move_to(dt.datetime.fromtimestamp(when.timestamp() - 3600, dt.UTC), tick=False)
    text = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
    _apply_revision(ctx, text, "初期設定")
    _ingest_fixture(ctx, text)
    WindowStore(ctx.db).approve_next("vendor-a", 1, "電子カルテの更新", ["電子カルテ"], "院長")
    now = month.end - 1
    data = gather_month(ctx, month)
    c = context(gather_snapshot(ctx, now), data, now)
    with ctx.db.connection() as conn:
        incidents = conn.execute("SELECT COUNT(*) FROM ids_incidents").fetchone()[0]
        alerts = conn.execute("SELECT COUNT(*) FROM ids_alerts").fetchone()[0]
    assert (c["incident_count"], data.alerts_total, sum(data.alerts_per_day or [])) == (
        incidents,
        alerts,
        alerts,
    )
    assert incidents > 0 and (data.alerts_per_day or [])[when.day - 1] > 0
    assert [ch["comment"] for ch in data.config_changes] == ["初期設定"]
    assert data.blocks == []
    html = render_month(ctx, month, now)
    assert "さくら内科クリニック" in html and "<script" not in html and "<svg" in html and "確認者" in html
    assert f"{incidents} 件" in html


def test_new_hosts_are_those_added_during_the_month(ctx: Context) -> None:
    import yaml

    text = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    data["hosts"].append({"name": "新しい受付PC", "ip": "192.168.10.21"})
    _apply_revision(ctx, text, "初期設定")
    _apply_revision(ctx, yaml.safe_dump(data, allow_unicode=True), "増設")
    month = parse_month("2026-10", "Asia/Tokyo")
    with ctx.db.transaction() as conn:  # the revisions' times, as if made before and during October
        conn.execute("UPDATE revisions SET created_at = ? WHERE id = 1", (month.start - 86400,))
        conn.execute("UPDATE revisions SET created_at = ? WHERE id = 2", (month.start + 10 * 86400,))
    got = gather_month(ctx, month)
    assert (got.new_hosts, got.first_setup) == (["新しい受付PC"], False)
    september = gather_month(ctx, parse_month("2026-09", "Asia/Tokyo"))
    assert (september.new_hosts, september.first_setup) == (
        sorted(h["name"] for h in yaml.safe_load(text)["hosts"]),
        True,
    )


def _first_of_next_month(day: dt.datetime) -> dt.datetime:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(
        day=1, hour=0, minute=5, second=0, microsecond=0
    )


def test_worker_makes_last_month_once(ctx: Context) -> None:
    """The box is set up now (the revision's real time); the clock then moves to the 1st of next month."""
    text = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
    clock = [_first_of_next_month(dt.datetime.now(TOKYO)).timestamp()]
    worker = MonthlyReportWorker(ctx, parse_config(text).model, clock=lambda: clock[0])
    assert worker.due() is None  # no report for a month before the box was set up
    this_month = _apply_revision(ctx, text, "初期設定")
    first = _first_of_next_month(this_month)
    clock[0] = first.timestamp()
    label = this_month.strftime("%Y-%m")
    assert worker.due() == label
    report = worker.run_once()
    assert report is not None and report.pdf is not None and report.pdf.read_bytes()[:5] == b"%PDF-"
    assert report.html.parent == ctx.paths.state_dir / "reports" and has_report(ctx, label)
    assert worker.due() is None and worker.run_once() is None  # made once, not every hour
    clock[0] = _first_of_next_month(first).timestamp() + 9 * 3600
    assert worker.due() == first.strftime("%Y-%m")


def test_worker_loop_stops_when_asked(ctx: Context) -> None:
    text = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
    worker = MonthlyReportWorker(
        ctx, parse_config(text).model, clock=lambda: ts("2026-12-02T00:00"), interval=0.01
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
