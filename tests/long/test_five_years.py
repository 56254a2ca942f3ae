"""Five years of a clinic's records on a small disk: the state database stays within its budget at every
month end, each table is pruned by its own rule (and no sooner), the audit chain still verifies after
pruning, the file is intact, and the dashboard and the alert list still answer with the right numbers.

The simulation is lab/years.py, the same code the retention benchmark (bench/bench_retention.py) times:
real EVE ingestion, each area's own writers, the retention coordinator after every step. The timeline is
the full five years of calendar, ending now (appliance.clock, so MAMORI_TEST_NOW moves it too): every
JST month boundary, leap day and retention age of those years is crossed, with a check at each month end.

Scaled to fit about three minutes on 2 cores, and said here because it is not the benchmark's clinic:
- the volume per day is 1/500 of the benchmark's 200,000 events and 1/50 of its 2,000 alerts, except the
  last FULL_DAYS day, at the benchmark's full volume: far over the IDS share of the budget;
- the budget is the smallest allowed (`storage.max_db_mb: 64`, `ids.max_db_mb: 64`), so at the end it is
  the size budget that prunes, as on the benchmark's busy clinic with 2 GB;
- the ages are short (audit and records 365 days, drops 30, VPN peer log 60, IDS 90) so that every rule,
  the audit log's cut from its start included, fires several times in five years (the defaults keep
  audit and records 1830 days, longer than the run).
No timing is asserted: the benchmark measures speed (`make bench`, docs/benchmarks.md).
"""

from __future__ import annotations

import re
import shutil
import sqlite3

import pytest
import time_machine
import yaml

from appliance.audit import AuditLog
from appliance.retention import MB, db_used_bytes
from ids.queries import OPEN_STATES
from lab.years import DAY, EXAMPLE, ClinicYears, Step, Volume, simulate

FULL_DAYS = 1
VOLUME = Volume(events_per_day=200_000, alerts_per_day=2_000, full_days=FULL_DAYS, event_thin=500,
                alert_thin=50)  # fmt: skip
STORAGE = {"max_db_mb": 64, "audit_days": 365, "records_days": 365, "drops_days": 30, "peer_log_days": 60}
IDS_DAYS = 90
# The loops are bounded (one step per week or day of the calendar); this only stops a hang. The work is about
# two minutes alone on 2 cores, more on a machine shared with other suites.
pytestmark = pytest.mark.timeout(900)
SLACK_DAYS = 32  # the newest row a rule may have deleted can be a step (at most a month) younger than its age


def _config() -> str:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["storage"] = dict(STORAGE)
    data["ids"] = {**data["ids"], "retention_days": IDS_DAYS, "max_db_mb": 64}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


# (table, time column, days kept, kept at least that long): the rules of appliance.retention and the areas.
RULES = [
    ("ids_events", "received", IDS_DAYS, False),  # the size budget cuts events before their age at the end
    ("ids_alerts", "ts", IDS_DAYS, False),
    ("fw_drops", "ts", STORAGE["drops_days"], True),
    ("fw_device_events", "ts", STORAGE["records_days"], True),
    ("vpn_peer_log", "ts", STORAGE["peer_log_days"], True),
    ("audit", "ts", STORAGE["audit_days"], True),
    ("web_sessions", "last_seen", 1, False),
]


class MonthEnds:
    """The checks run after the retention of every step that ends at a JST month start."""

    def __init__(self) -> None:
        self.months = 0
        self.worst_used = 0
        self.first: float | None = None

    def __call__(self, sim: ClinicYears, step: Step) -> None:
        self.first = step.start if self.first is None else self.first
        if step.month_end:
            self.months += 1
            self.check(sim, step)

    def check(self, sim: ClinicYears, step: Step) -> None:
        budget = sim.cfg.storage.max_db_mb * MB
        at = sim.retained_at
        with sim.db.connection() as conn:
            used = db_used_bytes(conn)
            self.worst_used = max(self.worst_used, used)
            assert used <= budget, f"{used / MB:.1f} MB in use at the month end {at}, budget {budget / MB} MB"
            assert sim.paths.db.stat().st_size <= budget
            for table, column, days, at_least in RULES:
                oldest = conn.execute(f"SELECT MIN({column}) FROM {table}").fetchone()[0]
                if oldest is None:  # a run that starts seconds before a month start has fed nothing yet
                    assert at - self.first < DAY, f"{table} is empty at a month end: the simulation feeds it"
                    continue
                assert oldest >= at - days * DAY, (
                    f"{table}: a row {(at - oldest) / DAY:.1f} days old, rule {days}"
                )
                if at_least and at - self.first > (days + SLACK_DAYS) * DAY:
                    assert oldest <= at - (days - SLACK_DAYS) * DAY, f"{table} pruned before {days} days"
        verdict = AuditLog(sim.db, sim.paths.keys_dir / "audit.key").verify()
        assert verdict.ok, f"audit chain broken at a month end: {verdict}"


@pytest.fixture(scope="module")
def five_years(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("five-years")
    checks = MonthEnds()
    sim, result = simulate(root, VOLUME, years=5, config_text=_config(), on_step=checks)
    yield sim, result, checks
    shutil.rmtree(root, ignore_errors=True)


def test_every_month_end_within_budget_and_rules(five_years) -> None:  # type: ignore[no-untyped-def]
    sim, result, checks = five_years
    assert checks.months >= 59  # five years of month starts (60, or 59 when the run ends on the 1st)
    assert result.days in (1826, 1827)  # five calendar years hold one or two leap days
    assert result.peak_used > sim.cfg.ids.max_db_mb * MB * 0.8 * 0.5, "the full days must press on the budget"
    for table in ("ids_events", "ids_alerts", "audit", "fw_drops", "fw_device_events", "vpn_peer_log"):
        assert result.deleted.get(table, 0) > 0, f"retention never pruned {table}"


def test_audit_chain_verifies_after_pruning(five_years) -> None:  # type: ignore[no-untyped-def]
    sim, _, _ = five_years
    log = AuditLog(sim.db, sim.paths.keys_dir / "audit.key")
    verdict = log.verify()
    assert verdict.ok and verdict.checked >= 365  # a year of daily sign-ins at least
    with sim.db.connection() as conn:
        pruned = conn.execute("SELECT count(*) FROM audit WHERE action = 'audit.pruned'").fetchone()[0]
        first = conn.execute("SELECT MIN(id) FROM audit").fetchone()[0]
    assert pruned >= 3 and first > 1  # cut from its start several times, and still whole


def test_database_intact(five_years) -> None:  # type: ignore[no-untyped-def]
    sim, _, _ = five_years
    conn = sqlite3.connect(sim.paths.db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_pages_answer_with_the_right_counts(five_years) -> None:  # type: ignore[no-untyped-def]
    from bench.bench_retention import signed_in_client

    sim, _, _ = five_years
    client = signed_in_client(sim.ctx)
    now = sim.now + 600
    with time_machine.travel(now, tick=False):
        hour = int(now // 3600) * 3600
        with sim.db.connection() as conn:
            day = conn.execute(
                "SELECT count(*) FROM ids_alerts WHERE ts >= ? AND ts < ?", (hour - 23 * 3600, hour + 3600)
            ).fetchone()[0]
            week = conn.execute("SELECT count(*) FROM ids_alerts WHERE ts >= ?", (now - 7 * DAY,)).fetchone()[
                0
            ]
            open_incidents = conn.execute(
                "SELECT count(*) FROM ids_incidents WHERE state IN (?, ?)", OPEN_STATES
            ).fetchone()[0]
        page = client.get("/")
        listing = client.get("/alerts/")
    assert page.status_code == 200 and listing.status_code == 200
    assert week > 0 and open_incidents > 0
    text = page.get_data(as_text=True)
    assert f"この24時間: <strong>{day}</strong> 件　この7日間: <strong>{week}</strong> 件" in text
    rows = re.findall(r'<a href="/alerts/\d+">', listing.get_data(as_text=True))
    assert len(rows) == min(open_incidents, 100)
