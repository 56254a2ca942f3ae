"""`mamori report ...` through the real CLI entry point (no root: the config is recorded as a revision)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.cli import main
from appliance.paths import Paths
from appliance.revisions import RevisionStore
from appliance.storage import Database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    paths = Paths(tmp_path / "config.yaml", tmp_path / "state")
    paths.ensure()
    db = Database(paths.db)
    db.migrate()
    text = (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8")
    with db.transaction() as conn:  # as ConfigService.apply records it: the revision and its audit entry
        rev = RevisionStore(db).add(conn, text, "院長", "cli", "", "", "applied")
        AuditLog(db, paths.keys_dir / "audit.key").record(
            "院長", "config.apply", {"revision": rev.id}, conn=conn
        )
    return paths.state_dir


def run(state: Path, *argv: str) -> int:
    return main(["--state-dir", str(state), "--author", "院長", *argv])


def test_checklist_formats(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(state, "report", "checklist") == 0
    text = capsys.readouterr().out
    assert (
        "2①  [はい]  サーバ、端末PC、ネットワーク機器の台帳管理を行っている。" in text and "X線装置" in text
    )
    assert run(state, "report", "checklist", "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["revision"] == 1 and doc["audit_ok"] is True
    assert {i["key"]: i["state"] for i in doc["items"]}["3-2"] == "いいえ"  # no backup of this box yet
    assert run(state, "report", "checklist", "--format", "html") == 0
    html = capsys.readouterr().out
    assert (
        html.startswith("<!DOCTYPE html>") and "<script" not in html and "接続元制限を実施している。" in html
    )


def test_answer_then_checklist_shows_it(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(state, "report", "answer", "3-3", "いいえ") == 1  # refused: no target date
    assert "目標日" in capsys.readouterr().err
    assert run(state, "report", "answer", "3-3", "no", "--target-date", "2027-03-31") == 0
    assert run(state, "report", "checklist", "--format", "json") == 0
    out = capsys.readouterr().out
    item = next(i for i in json.loads(out[out.index("{") :])["items"] if i["key"] == "3-3")
    assert (item["answer"], item["target_date"]) == ("いいえ", "2027-03-31")


def test_monthly_html_only(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(state, "report", "monthly", "--month", "2026-10", "--out", str(tmp_path / "o"), "--no-pdf") == 0
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "o" / "2026-10.html")
    assert "2026年10月" in (tmp_path / "o" / "2026-10.html").read_text(encoding="utf-8")
    assert run(state, "report", "monthly", "--month", "2026/10") == 1


def test_ledger_csv_opens_in_excel(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(state, "report", "ledger") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "名前,IPアドレス,MACアドレス,ゾーン,説明,出どころ"
    assert "X線装置,192.168.30.40,,医療機器,一般撮影装置（更新できない古い機器）,設定" in lines
    target = tmp_path / "ledger.csv"
    assert run(state, "report", "ledger", "--out", str(target)) == 0
    raw = target.read_bytes()
    assert (
        raw.startswith("\ufeff".encode()) and raw.count(b"\r\n") == 5
    )  # header + the 4 hosts of clinic.yaml


def test_a_box_without_config_says_so_instead_of_guessing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path / "empty", "report", "checklist", "--format", "json") == 0
    items = {i["key"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert (
        items["2-1"]["state"] == "要確認" and "データがありません（機能未提供）" in items["2-1"]["evidence"]
    )
    assert items["2-13"]["state"] == "要確認" and items["2-13"]["rows"] == []


def test_dhcp_devices_not_in_the_ledger_are_called_out(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dnsmasq's lease file as dnsmasq writes it; names come from the devices (hostile ones included)."""
    leases = [
        "1795700000 aa:bb:cc:dd:ee:01 192.168.10.20 uketsuke-pc 01:aa:bb:cc:dd:ee:01",  # 受付PC: in the ledger
        "1795700000 aa:bb:cc:dd:ee:02 192.168.10.150 =HYPERLINK(evil) *",  # unknown, formula-looking name
        "1795700000 aa:bb:cc:dd:ee:03 192.168.20.120 * *",  # guest phone without a name
        "garbage line",
        "1795700000 not-a-mac 192.168.10.151 x *",
        "1795700000 aa:bb:cc:dd:ee:04 999.1.1.1 x *",
    ]
    (state / "dnsmasq.leases").write_text("\n".join(leases) + "\n", encoding="utf-8")
    assert run(state, "report", "checklist", "--format", "json") == 0
    item = next(i for i in json.loads(capsys.readouterr().out)["items"] if i["key"] == "2-1")
    assert item["state"] == "要確認" and "台帳にない機器が 2 台" in item["evidence"]
    found = [r for r in item["rows"] if r[5] == "検出（DHCP）"]
    assert [(r[0], r[1], r[3]) for r in found] == [
        ("=HYPERLINK(evil)", "192.168.10.150", "院内"),
        ("（名前なし）", "192.168.20.120", "患者さん用Wi-Fi"),
    ]
    assert run(state, "report", "ledger") == 0
    out = capsys.readouterr().out
    assert "'=HYPERLINK(evil),192.168.10.150" in out and "\n=HYPERLINK" not in out  # never a live formula
