"""The checklist pages in the real web app (real accounts, TOTP, CSRF), roles side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.revisions import RevisionStore
from reports.answers import load
from reports.month_data import parse_month
from reports.monthly import generate
from tests.webui_fixtures import EXAMPLE, Box, csrf, make_box


@pytest.fixture
def box(tmp_path: Path) -> Box:
    b = make_box(tmp_path)
    assert "reports" in b.app.blueprints  # webui's app factory registers it (reports/area.py)
    with b.ctx.db.transaction() as conn:
        RevisionStore(b.ctx.db).add(
            conn, EXAMPLE.read_text(encoding="utf-8"), "admin", "web", "", "", "applied"
        )
    b.add("admin", "admin")
    b.add("staff", "viewer")
    b.add("vendor-audit", "vendor", grants=("audit",))
    return b


ACCESS = [
    # (account, path, expected status)
    ("admin", "/reports/", 200),
    ("admin", "/reports/checklist.html", 200),
    ("vendor-audit", "/reports/", 200),
    ("staff", "/reports/", 403),
    ("staff", "/reports/ledger.csv", 403),
    (None, "/reports/", 302),
]


@pytest.mark.parametrize(("who", "path", "status"), ACCESS)
def test_who_sees_the_checklist(box: Box, who: str | None, path: str, status: int) -> None:
    client = box.client()
    if who:
        box.login(client, who)
    assert client.get(path).status_code == status


def test_admin_answers_and_the_answer_is_audited(box: Box) -> None:
    client = box.client()
    box.login(client, "admin")
    page = client.get("/reports/").get_data(as_text=True)
    assert "サーバ、端末PC、ネットワーク機器の台帳管理を行っている。" in page and "回答を記録" in page
    token = csrf(client, "/reports/")
    form = {
        "csrf_token": token,
        "item": "3-3",
        "answer": "いいえ",
        "target_date": "2027-03-31",
        "note": "作成中",
    }
    assert client.post("/reports/answer", data=form).status_code == 302
    assert load(box.ctx.db)["3-3"].answer == "いいえ"
    entry = AuditLog(box.ctx.db).search(text="reports.checklist.answer")[0]
    assert (entry.actor, entry.source, entry.detail["target_date"]) == ("admin", "web", "2027-03-31")
    refused = client.post("/reports/answer", data={**form, "item": "1-1", "target_date": ""})
    assert refused.status_code >= 400 and "1-1" not in load(box.ctx.db)  # いいえ without a target date
    no_token = client.post("/reports/answer", data={**form, "csrf_token": "x", "item": "3-1"})
    assert no_token.status_code >= 400 and "3-1" not in load(box.ctx.db)


def test_a_vendor_cannot_answer_for_the_clinic(box: Box) -> None:
    client = box.client()
    box.login(client, "vendor-audit")
    page = client.get("/reports/").get_data(as_text=True)
    assert "回答を記録" not in page
    token = csrf(client, "/reports/")
    r = client.post("/reports/answer", data={"csrf_token": token, "item": "3-1", "answer": "はい"})
    assert r.status_code == 403 and load(box.ctx.db) == {}


def test_ledger_and_stored_reports_download(box: Box) -> None:
    generate(box.ctx, parse_month("2026-10", "Asia/Tokyo"), pdf=False)
    client = box.client()
    box.login(client, "admin")
    csv = client.get("/reports/ledger.csv")
    assert csv.status_code == 200 and csv.get_data(as_text=True).startswith("\ufeff名前,IPアドレス")
    assert "reports.ledger_export" in [e.action for e in AuditLog(box.ctx.db).search()]
    assert "2026-10" in client.get("/reports/").get_data(as_text=True)
    report = client.get("/reports/monthly/2026-10.html")
    assert report.status_code == 200 and "2026年10月" in report.get_data(as_text=True)
    for bad in ("2026-11.html", "..%2Fmamori.db", "2026-10.txt", "mamori.db"):
        assert client.get(f"/reports/monthly/{bad}").status_code == 404, bad
