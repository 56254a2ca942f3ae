"""Open incidents do not stay open for ever (ids.incidents.auto_close, run by the retention pass): a 未対応
incident with no new alert for `ids.incident_auto_close_days` (default 90) is closed as 解決済み with the note
「自動で終了（90日間 新しい検知なし）」, audited, shown on its page, and then ages like any closed one. And
ids.queries.open_incidents reads the partial index of open incidents, not the whole table.
Every time is relative to appliance.clock.wall()."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from appliance import clock
from appliance.audit import AuditLog
from appliance.config.load import parse_config
from appliance.errors import ConfigError
from appliance.retention import AGES_PAUSED_DAYS, Policy, run_once
from appliance.storage import Database
from ids import incidents
from ids.incidents import ACKNOWLEDGED, OPEN, RESOLVED
from ids.queries import open_incidents
from ids.retention import retain
from tests.unit.test_retention import EXAMPLE, config
from tests.webui_fixtures import make_box

DAY = 86400.0
NOTE = "自動で終了（90日間 新しい検知なし）"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "state.db")
    d.migrate()
    return d


def _incident(db: Database, last_seen: float, state: str = OPEN, severity: int = 1, notes: str = "") -> int:
    with db.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO ids_incidents(sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category, state, notes) VALUES (2024897, '198.51.100.66', '192.168.10.10', ?, ?, 3, ?, 'ET SCAN',"
            " 'Attempted Information Leak', ?, ?)",
            (last_seen - 3600, last_seen, severity, state, notes),
        )
    return int(cur.lastrowid or 0)


def _policy(now: float, close_days: int = 90, ids_days: int = 180) -> Policy:
    return Policy(now, 1 << 30, {"ids": ids_days, "incident_auto_close": close_days})


def test_an_open_incident_quiet_for_90_days_is_closed_noted_and_audited(db: Database) -> None:
    now = clock.wall()
    earlier = (
        f"[{clock.show(now - 100 * DAY, fmt='%Y-%m-%d %H:%M')} 受付] 様子を見ます"  # a note someone left
    )
    quiet = _incident(db, now - 91 * DAY, notes=earlier)
    recent = _incident(db, now - 89 * DAY)
    handled = _incident(db, now - 120 * DAY, state=ACKNOWLEDGED)  # someone is on it: not closed by itself
    retain(db, _policy(now))
    got = {i: incidents.get(db, i) for i in (quiet, recent, handled)}
    assert (got[quiet].state, got[recent].state, got[handled].state) == (RESOLVED, OPEN, ACKNOWLEDGED)
    lines = got[quiet].notes.splitlines()
    assert lines[0] == earlier and lines[1].endswith(f"system] {NOTE}")
    entries = [
        e for e in AuditLog(db).search(actor="system", limit=50) if e.action == "ids.incident.auto_closed"
    ]
    assert [e.detail["incidents"] for e in entries] == [[quiet]] and entries[0].source == "retention"
    assert entries[0].detail["to"] == RESOLVED and entries[0].detail["days"] == 90
    # a second pass closes nothing more and audits nothing more
    assert incidents.auto_close(db, now, 90) == []


def test_once_closed_it_ages_like_any_closed_incident(db: Database) -> None:
    now = clock.wall()
    old = _incident(db, now - 200 * DAY)  # older than ids.retention_days (180) too
    kept = _incident(db, now - 100 * DAY)
    deleted = retain(db, _policy(now))
    assert deleted["ids_incidents"] == 1
    assert incidents.get(db, kept).state == RESOLVED
    with pytest.raises(Exception, match=str(old)):
        incidents.get(db, old)
    # the audit log still says it was closed
    closed = [e.detail["incidents"] for e in AuditLog(db).search(actor="system", limit=50)]
    assert sorted(closed[0]) == sorted([old, kept])


def test_nothing_is_closed_while_ages_are_not_trusted_or_when_the_policy_has_no_rule(db: Database) -> None:
    now = clock.wall()
    inc = _incident(db, now - 400 * DAY)
    retain(db, Policy(now, 1 << 30, {"ids": AGES_PAUSED_DAYS, "incident_auto_close": AGES_PAUSED_DAYS}))
    retain(db, Policy(now, 1 << 30, {"ids": AGES_PAUSED_DAYS}))
    assert incidents.get(db, inc).state == OPEN


def test_the_coordinator_closes_them_by_the_config(db: Database) -> None:
    now = clock.wall()
    inc = _incident(db, now - 40 * DAY)
    run_once(db, config(), now)
    assert incidents.get(db, inc).state == OPEN  # default 90 days
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["ids"]["incident_auto_close_days"] = 30
    run_once(db, parse_config(yaml.safe_dump(data, allow_unicode=True)).model, now)
    found = incidents.get(db, inc)
    assert found.state == RESOLVED and found.notes.endswith("自動で終了（30日間 新しい検知なし）")


@pytest.mark.parametrize("days", [0, 6, 3651, "forever"])
def test_the_setting_is_bounded(days: object) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["ids"]["incident_auto_close_days"] = days
    with pytest.raises(ConfigError) as exc:
        parse_config(yaml.safe_dump(data, allow_unicode=True))
    assert any(i.path == "ids.incident_auto_close_days" for i in exc.value.issues)
    assert parse_config(EXAMPLE.read_text(encoding="utf-8")).model.ids.incident_auto_close_days == 90


@pytest.mark.parametrize(("retention", "auto_close", "ok"), [(30, 90, False), (89, 90, False), (90, 90, True),
                                                             (30, 30, True), (180, 7, True)])  # fmt: skip
def test_retention_may_not_be_shorter_than_the_auto_close(retention: int, auto_close: int, ok: bool) -> None:
    """Else an incident closed by a retention pass would be deleted by the same pass, never seen closed."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["ids"].update(retention_days=retention, incident_auto_close_days=auto_close)
    text = yaml.safe_dump(data, allow_unicode=True)
    if ok:
        assert parse_config(text).model.ids.retention_days == retention
        return
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    [issue] = exc.value.issues
    assert issue.path == "ids"
    assert (
        f"保存日数（retention_days: {retention}日）" in issue.message.ja
        and "以上にしてください" in issue.message.ja
    )
    assert f"must be at least ids.incident_auto_close_days ({auto_close})" in issue.message.en


def test_the_incident_page_shows_why_it_was_closed(tmp_path: Path) -> None:
    box = make_box(tmp_path)
    box.add("admin", "admin")
    inc = _incident(box.ctx.db, clock.wall() - 91 * DAY, notes="<b>院内メモ</b>")
    incidents.auto_close(box.ctx.db, clock.wall(), 90)
    client = box.client()
    box.login(client, "admin")
    page = client.get(f"/alerts/{inc}").get_data(as_text=True)
    assert "解決済み" in page and NOTE in page
    assert "&lt;b&gt;院内メモ&lt;/b&gt;" in page and "<b>院内メモ" not in page


def test_open_incidents_reads_the_partial_index(db: Database) -> None:
    now = clock.wall()
    for i in range(60):
        _incident(db, now - i * DAY, state=(OPEN, ACKNOWLEDGED, RESOLVED)[i % 3], severity=1 + i % 3)
    seen: list[str] = []
    connect = db.connect

    def traced() -> sqlite3.Connection:
        conn = connect()
        conn.set_trace_callback(seen.append)
        return conn

    db.connect = traced  # type: ignore[method-assign]
    counts = open_incidents(db)
    db.connect = connect  # type: ignore[method-assign]
    assert {k: v.count for k, v in counts.items()} == {"high": 20, "medium": 0, "low": 0}
    query = next(s for s in seen if "FROM ids_incidents" in s)
    args = (OPEN,) * query.count("?")  # the callback may get the statement with or without its values
    with db.connection() as conn:
        plan = " | ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {query}", args))
    # the small partial index, in severity order: no scan of every incident ever kept, no sort
    assert "INDEX ids_incidents_open_severity" in plan and "TEMP B-TREE" not in plan, plan
