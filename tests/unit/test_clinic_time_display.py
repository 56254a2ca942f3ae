"""Times a person reads follow clinic.timezone, whatever the process's own zone (TZ) is (issue 20.5).

A box without TZ runs in UTC and a developer's shell may be in New York: the CLI, the web UI, the device
export, incident notes, backup names and the checklist still show the clinic's time. Each case runs under
both process zones and for a clinic in Asia/Tokyo and in UTC, at 03:07 clinic time today (from the clock),
where both the hour and the date differ between the zones.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.backup import api as backup_api
from appliance.backup import store
from appliance.backup.manifest import Manifest
from appliance.cli import main
from appliance.config.load import load_config
from appliance.paths import Paths
from appliance.storage import Database
from appliance.subsystem import Context
from firewall.inventory import Inventory
from ids import incidents
from reports import checklist
from tests.webui_fixtures import make_box

REPO = Path(__file__).resolve().parents[2]
PROCESS_ZONES = ("UTC", "America/New_York")
CLINIC_ZONES = ("Asia/Tokyo", "UTC")


@pytest.fixture(params=PROCESS_ZONES)
def process_tz(request: pytest.FixtureRequest):
    """This process's own zone (TZ) for the test; put back afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture(params=CLINIC_ZONES)
def clinic_tz(request: pytest.FixtureRequest) -> str:
    return request.param


def moment(tz: str) -> float:
    """Today (by the clock, in the clinic's zone) at 03:07:09 clinic time."""
    today = dt.datetime.now(ZoneInfo(tz)).date()
    return dt.datetime(today.year, today.month, today.day, 3, 7, 9, tzinfo=ZoneInfo(tz)).timestamp()


def clinic(ts: float, tz: str, fmt: str) -> str:
    """What a person at the clinic reads, worked out here without appliance.clock."""
    return dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime(fmt)


def assert_sensitive(ts: float, tz: str, fmt: str) -> None:
    """The process's local time differs from the clinic's here: the old time.localtime code gave it."""
    if os.environ["TZ"] != tz:
        assert time.strftime(fmt, time.localtime(ts)) != clinic(ts, tz, fmt)


@pytest.fixture
def box(tmp_path: Path, clinic_tz: str) -> tuple[Context, list[str]]:
    """A state directory with the example config in the clinic's zone; the CLI arguments that use it."""
    config = tmp_path / "config.yaml"
    shutil.copy(REPO / "examples" / "clinic.yaml", config)
    text = config.read_text(encoding="utf-8")
    assert "timezone: Asia/Tokyo" in text
    config.write_text(text.replace("timezone: Asia/Tokyo", f"timezone: {clinic_tz}"), encoding="utf-8")
    paths = Paths(config=config, state_dir=tmp_path / "state")
    ctx = Context(paths=paths, db=Database(paths.db))
    ctx.db.migrate()
    return ctx, ["--config", str(config), "--state-dir", str(paths.state_dir)]


def cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def seed_incident(ctx: Context, ts: float) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO ids_incidents(id, sid, src_ip, dest_ip, first_seen, last_seen, count, severity, signature,"
            " category) VALUES (5, 2001219, '203.0.113.9', '192.168.10.10', ?, ?, 1, 2, 'ET SCAN x', 'Attempted"
            " Information Leak')",
            (ts, ts),
        )
        conn.execute(
            "INSERT INTO ids_alerts(incident_id, ts, sid, rev, signature, category, severity, src_ip, src_port,"
            " dest_ip, dest_port, proto, detail) VALUES (5, ?, 2001219, 1, 'ET SCAN x', 'Attempted Information"
            " Leak', 2, '203.0.113.9', 40000, '192.168.10.10', 22, 'TCP', '{}')",
            (ts,),
        )


def seed_device(ctx: Context, ts: float) -> None:
    with ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO fw_devices(mac, ip, zone, interface, hostname, vendor, first_seen, last_seen)"
            " VALUES ('52:54:00:12:34:56', '192.168.10.30', 'lan', 'lan0', 'pc1', 'Example Corp', ?, ?)",
            (ts, ts),
        )


# -- the table: what each place prints, and in which format ----------------------------------------------

Case = Callable[[Context, list[str], float, pytest.CaptureFixture[str]], str]


def ids_alerts(ctx, base, ts, capsys) -> str:
    seed_incident(ctx, ts)
    return cli(capsys, [*base, "ids", "alerts"])


def ids_incidents(ctx, base, ts, capsys) -> str:
    seed_incident(ctx, ts)
    return cli(capsys, [*base, "ids", "incidents"])


def incident_note(ctx, base, ts, capsys) -> str:
    seed_incident(ctx, ts)
    tz = load_config(ctx.paths.config).model.clinic.timezone
    return incidents.set_state(ctx.db, 5, "acknowledged", "受付", note="確認", now=ts, tz=tz).notes


def fw_devices(ctx, base, ts, capsys) -> str:
    seed_device(ctx, ts)
    return cli(capsys, [*base, "fw", "devices"])


def fw_drops(ctx, base, ts, capsys) -> str:
    with ctx.db.transaction() as conn:
        conn.execute(
            "INSERT INTO fw_drops(ts, prefix, in_if, out_if, src, dst, proto, sport, dport)"
            " VALUES (?, 'mamori drop wan>lan blocked-inbound: ', 'wan0', 'lan0', '203.0.113.9', '192.168.10.10',"
            " 'tcp', 40000, 3389)",
            (ts,),
        )
    return cli(capsys, [*base, "fw", "drops"])


def inventory_csv(ctx, base, ts, capsys) -> str:
    seed_device(ctx, ts)
    return Inventory(ctx, load_config(ctx.paths.config).model).csv()


def backup_status(ctx, base, ts, capsys) -> str:
    with ctx.db.transaction() as conn:
        conn.execute("INSERT INTO backup_runs(ts, kind, ok) VALUES (?, 'manual', 1)", (ts,))
    return cli(capsys, [*base, "backup", "status"])


def backup_name(ctx, base, ts, capsys) -> str:
    directory = ctx.paths.state_dir / "backups"
    directory.mkdir()
    return store.new_path(directory, ts, backup_api.clinic_zone(ctx.paths)).name


def backup_test_text(ctx, base, ts, capsys) -> str:
    manifest = Manifest(
        created="", created_ts=ts, software_version="0", clinic="", hostname="", files=[], dirs={}
    )
    result = backup_api.TestResult(1, ts, Path("x.mbk"), True, manifest)
    return result.text("ja", backup_api.clinic_zone(ctx.paths))


def checklist_date(ctx, base, ts, capsys) -> str:
    return checklist._date(ts, load_config(ctx.paths.config).model.clinic.timezone)


CASES: list[tuple[Case, str]] = [
    (ids_alerts, "%Y-%m-%d %H:%M:%S"),
    (ids_incidents, "%Y-%m-%d %H:%M:%S"),
    (incident_note, "[%Y-%m-%d %H:%M 受付]"),
    (fw_devices, "%m-%d %H:%M"),
    (fw_drops, "%m-%d %H:%M:%S"),
    (inventory_csv, "%Y-%m-%d %H:%M:%S"),
    (backup_status, "%Y-%m-%d %H:%M"),
    (backup_name, "mamori-backup-%Y%m%d-%H%M%S.mbk"),
    (backup_test_text, "（%Y/%m/%d %H:%M のバックアップ）"),
    (checklist_date, "%Y-%m-%d"),
]


@pytest.mark.parametrize(("case", "fmt"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_printed_times_are_clinic_times(
    case: Case, fmt: str, box, clinic_tz: str, process_tz: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx, base = box
    ts = moment(clinic_tz)
    assert_sensitive(ts, clinic_tz, fmt)
    out = case(ctx, base, ts, capsys)
    assert clinic(ts, clinic_tz, fmt) in out, out


def test_cli_default_zone_before_any_config(tmp_path: Path, process_tz: str, capsys) -> None:
    """No config yet: the default zone (Asia/Tokyo), not the process's."""
    paths = Paths(config=tmp_path / "none.yaml", state_dir=tmp_path / "state")
    ctx = Context(paths=paths, db=Database(paths.db))
    ctx.db.migrate()
    ts = moment("Asia/Tokyo")
    with ctx.db.transaction() as conn:
        conn.execute("INSERT INTO backup_runs(ts, kind, ok) VALUES (?, 'manual', 1)", (ts,))
    out = cli(
        capsys, ["--config", str(paths.config), "--state-dir", str(paths.state_dir), "backup", "status"]
    )
    assert clinic(ts, "Asia/Tokyo", "%Y-%m-%d %H:%M") in out, out


def test_web_ui_times_and_chart_labels(tmp_path: Path, clinic_tz: str, process_tz: str) -> None:
    b = make_box(tmp_path)
    text = b.ctx.paths.config.read_text(encoding="utf-8").replace(
        "timezone: Asia/Tokyo", f"timezone: {clinic_tz}"
    )
    b.ctx.paths.config.write_text(text, encoding="utf-8")
    b.add("admin", "admin")
    ts = moment(clinic_tz)
    seed_device(b.ctx, ts)
    seed_incident(b.ctx, ts)
    client = b.client()
    b.login(client, "admin")

    csv_text = client.get("/devices/export.csv").get_data(as_text=True)
    assert clinic(ts, clinic_tz, "%Y/%m/%d %H:%M") in csv_text, csv_text
    page = client.get("/").get_data(as_text=True)
    assert clinic(ts, clinic_tz, "%Y/%m/%d %H:%M") in page  # the |jst filter (the open incident)
    charts = [json.loads(html.unescape(m)) for m in re.findall(r'data-chart="([^"]*)"', page)]
    now = b.clock.now
    assert charts[0]["labels"] == [clinic(now - (23 - i) * 3600, clinic_tz, "%H時") for i in range(24)]
    assert charts[1]["labels"] == [clinic(now - (6 - i) * 86400, clinic_tz, "%m/%d") for i in range(7)]
    if clinic_tz == "UTC":  # the old labels were Tokyo's whatever the config said
        assert charts[0]["labels"][-1] != clinic(now, "Asia/Tokyo", "%H時")
