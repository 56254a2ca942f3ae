"""`mamori ids ...` through the real CLI entry point, on a temporary state directory (no root needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.storage import Database
from ids.eve_reader import EveReader
from ids.ingest import AlertIngest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "eve" / "suricata-7.0.10.jsonl"


@pytest.fixture
def state(tmp_path: Path) -> tuple[list[str], Path]:
    from appliance.config.load import load_config

    config = tmp_path / "config.yaml"
    shutil.copy(REPO / "examples" / "clinic.yaml", config)
    db = Database(tmp_path / "state" / "mamori.db")
    db.migrate()
    ingest = AlertIngest(load_config(config).model)
    EveReader(db, FIXTURE, sink=ingest.sink, on_commit=ingest.on_commit).poll()
    return ["--config", str(config), "--state-dir", str(tmp_path / "state")], tmp_path


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_incidents_in_japanese_then_acknowledged(state, capsys) -> None:
    base, _ = state
    code, out, _ = run(capsys, [*base, "ids", "incidents"])
    assert code == 0
    assert "インターネットからリモートデスクトップ（RDP）への接続の試み" in out
    assert "X線装置（医療機器）" in out and "電子カルテ（院内）" in out
    assert "ET SCAN" not in out and "MAMORI" not in out  # English only with -v, as 技術情報
    code, out_v, _ = run(capsys, [*base, "-v", "ids", "incidents"])
    assert "技術情報: sid 2009358 ET SCAN" in out_v
    first = int(out.split("#", 1)[1].split(" ", 1)[0])
    code, out, _ = run(
        capsys, [*base, "--author", "受付", "ids", "incident", str(first), "acknowledged", "--note", "確認"]
    )
    assert code == 0 and f"#{first}: 確認済み" in out
    code, out, _ = run(capsys, [*base, "ids", "incidents", "--state", "確認済み"])
    assert out.count("[確認済み]") == 1 and "メモ: [" in out


def test_status_alerts_rules_and_errors(state, capsys) -> None:
    base, _ = state
    code, out, _ = run(capsys, [*base, "ids", "status"])
    assert code == 0 and "Suricata: 停止" in out and "events=144" in out and "alerts=11" in out
    assert "監視: " in out and "取りこぼし 0" in out  # from the fixture's real stats record
    code, out, _ = run(capsys, [*base, "--lang", "en", "ids", "status"])
    assert "Suricata: stopped" in out
    code, out, _ = run(capsys, [*base, "ids", "alerts", "--limit", "3"])
    assert code == 0 and len(out.strip().splitlines()) == 3 and "[" in out
    code, out, _ = run(capsys, [*base, "ids", "rules"])
    assert "ET Open: 未導入" in out
    code, _, err = run(capsys, [*base, "ids", "incident", "9999", "resolved"])
    assert code == 1 and "インシデント 9999 はありません" in err
    code, _, err = run(capsys, [*base, "ids", "update", "--source", "/nonexistent/rules"])
    assert code == 1 and "エラー" in err
    with Database(Path(base[3]) / "db" / "mamori.db").connection() as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT detail FROM audit WHERE action LIKE 'ids.%'")]
    assert rows and rows[-1]["src"] == "/nonexistent/rules"


def test_status_warns_of_a_refused_eve_file(state, capsys) -> None:
    base, tmp = state
    code, out, _ = run(capsys, [*base, "ids", "status"])
    assert code == 0 and "拒否" not in out
    link = tmp / "eve.json"
    link.symlink_to(FIXTURE)  # what a compromised Suricata could put in its log directory
    assert EveReader(Database(Path(base[3]) / "db" / "mamori.db"), link).poll() == 0
    code, out, _ = run(capsys, [*base, "ids", "status"])
    assert "読み込みを拒否しました（1回）" in out and "保守業者に連絡してください" in out
    code, out, _ = run(capsys, [*base, "--lang", "en", "ids", "status"])
    assert "1 EVE file(s) refused" in out
