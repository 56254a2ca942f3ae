"""Retention keeps the IDS tables within the configured age and size."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.storage import Database
from ids.eve_reader import EveReader
from ids.retention import apply_retention


def _fill(tmp_path: Path, db: Database, n: int, received: float) -> None:
    eve = tmp_path / f"eve-{received}.json"
    eve.write_text(
        "".join(json.dumps({"event_type": "flow", "seq": i, "pad": "p" * 80}) + "\n" for i in range(n))
    )
    EveReader(db, eve, source=str(received), clock=lambda: received).poll()


def test_age_and_size_limits(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    _fill(tmp_path, db, 100, received=1_000.0)
    _fill(tmp_path, db, 200, received=100_000.0)
    with db.connection() as conn:
        with_size = conn.execute("SELECT SUM(size) FROM ids_events WHERE received = 100000").fetchone()[0]
    res = apply_retention(db, max_age_s=50_000, max_event_bytes=with_size // 2, now=100_001.0)
    with db.connection() as conn:
        left = conn.execute("SELECT COUNT(*), SUM(size), MIN(received) FROM ids_events").fetchone()
    assert left[2] == 100_000.0  # the old ones went by age
    assert left[1] <= with_size // 2  # then the oldest of the rest by size
    assert 95 <= left[0] <= 101
    assert res.events_deleted == 300 - left[0]


def test_nothing_to_delete(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    db.migrate()
    _fill(tmp_path, db, 10, received=1_000.0)
    res = apply_retention(db, max_age_s=10_000, max_event_bytes=10**9, now=1_001.0)
    assert res.events_deleted == 0
