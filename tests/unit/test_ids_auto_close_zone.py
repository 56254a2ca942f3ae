"""The note the retention pass writes when it closes a quiet incident (ids.incidents.auto_close) carries the
time in the clinic's zone (clinic.timezone), like the notes people write: the coordinator hands the zone to
every area in its Policy. Times are relative to appliance.clock.wall()."""

from __future__ import annotations

from pathlib import Path

import yaml

from appliance import clock
from appliance.config.load import parse_config
from appliance.retention import policies
from appliance.storage import Database
from ids import incidents
from ids.retention import retain
from tests.unit.test_retention import EXAMPLE

DAY = 86400.0


def _config(tz: str):  # type: ignore[no-untyped-def]
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["clinic"]["timezone"] = tz
    return parse_config(yaml.safe_dump(data, allow_unicode=True)).model


def test_the_auto_close_note_is_stamped_in_the_clinics_zone(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    db.migrate()
    now = clock.wall()
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO ids_incidents(sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category, state, notes) VALUES (2024897, '198.51.100.66', '192.168.10.10', ?, ?, 3, 1, 'ET SCAN',"
            " 'Attempted Information Leak', '未対応', '')",
            (now - 100 * DAY, now - 99 * DAY),
        )
    policy = policies(_config("UTC"), now)["ids"]
    assert policy.tz == "UTC"
    retain(db, policy)
    incident = incidents.get(db, 1)
    utc, tokyo = clock.show(now, "UTC", "%Y-%m-%d %H:%M"), clock.show(now, "Asia/Tokyo", "%Y-%m-%d %H:%M")
    assert utc != tokyo  # nine hours apart: the check below can tell the zones apart
    assert incident.state == incidents.RESOLVED
    assert incident.notes.startswith(f"[{utc} system] ")
