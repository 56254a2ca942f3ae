"""The IDS answers the dashboard and the alert list read (ids.queries): the same rows and counts as a plain
reading of ids_incidents, taken from the partial indexes of the open incidents (ids.schema) so that a box
with years of unanswered incidents does not sort or count the whole table on every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.storage import Database
from ids import schema
from ids.incidents import ACKNOWLEDGED, OPEN, RESOLVED
from ids.queries import OPEN_STATES, OPEN_WHERE, find_incidents, open_incident_count

STATES_CYCLE = (OPEN, OPEN, ACKNOWLEDGED, RESOLVED)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "state.db")
    d.migrate()
    with d.transaction() as conn:
        conn.executemany(
            "INSERT INTO ids_incidents(sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category, state) VALUES (?, ?, '203.0.113.2', ?, ?, 1, ?, 'sig', 'cat', ?)",
            [(1990001 + i % 5, f"198.51.100.{i % 250}", 1000.0 + i, 1000.0 + (i * 7919) % 400, 1 + i % 3,
              STATES_CYCLE[i % 4]) for i in range(400)],
        )  # fmt: skip
    return d


def _plain(db: Database) -> list[dict]:
    with db.connection() as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM ids_incidents")]


def test_open_where_is_the_index_condition_and_the_open_states() -> None:
    assert tuple(re.findall(r"'([^']+)'", OPEN_WHERE)) == OPEN_STATES
    index_sql = " ".join(schema.SCHEMA[-1].split())
    assert index_sql.count(f"WHERE {OPEN_WHERE}") == 2


def test_open_count_equals_a_plain_count(db: Database) -> None:
    want: dict[int, int] = {}
    for r in _plain(db):
        if r["state"] in OPEN_STATES:
            want[r["severity"]] = want.get(r["severity"], 0) + 1
    assert open_incident_count(db) == want and sum(want.values()) == 300


@pytest.mark.parametrize("severity", [None, 1, 2, 3])
@pytest.mark.parametrize("limit", [5, 100, 1000])
def test_open_list_equals_a_plain_sort(db: Database, severity: int | None, limit: int) -> None:
    rows = [r for r in _plain(db) if r["state"] in OPEN_STATES and severity in (None, r["severity"])]
    got = find_incidents(db, state="open", severity=severity, limit=limit)
    assert [r["last_seen"] for r in got] == sorted((r["last_seen"] for r in rows), reverse=True)[:limit]
    assert {r["id"] for r in got} <= {r["id"] for r in rows} and all(r["state"] in OPEN_STATES for r in got)


def test_other_state_filters_unchanged(db: Database) -> None:
    for state in (OPEN, ACKNOWLEDGED, RESOLVED):
        got = find_incidents(db, state=state, limit=1000)
        assert len(got) == sum(1 for r in _plain(db) if r["state"] == state) and {
            r["state"] for r in got
        } == {state}
    assert len(find_incidents(db, limit=1000)) == 400


def _plan(db: Database, sql: str) -> str:
    with db.connection() as conn:
        return " | ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))


def test_open_incidents_are_read_from_the_partial_indexes(db: Database) -> None:
    count = _plan(db, f"SELECT severity, COUNT(*) FROM ids_incidents WHERE {OPEN_WHERE} GROUP BY severity")
    assert "ids_incidents_open_severity" in count and "TEMP B-TREE" not in count
    newest = _plan(
        db, f"SELECT * FROM ids_incidents WHERE 1=1 AND {OPEN_WHERE} ORDER BY last_seen DESC LIMIT 5"
    )
    assert "ids_incidents_open" in newest and "TEMP B-TREE" not in newest
