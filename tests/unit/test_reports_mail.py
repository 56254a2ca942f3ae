"""The monthly report is mailed when notifications.email is configured: a real SMTP receiver on loopback
that requires STARTTLS (the one the IDS notification tests use) gets one mail with a Japanese subject and
body and the report's PDF attached byte for byte. A failed send keeps the report and is audited."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from appliance.audit import AuditLog
from appliance.notify import EmailChannel
from reports.daemon import MonthlyReportWorker
from reports.mail import report_message
from reports.monthly import GeneratedReport, has_report
from tests.unit.test_notify_channels import SmtpReceiver, cert_dir, cfg_with, tls_pair  # noqa: F401  (fixtures)
from tests.unit.test_reports_monthly import _apply_revision, _first_of_next_month

REPO = Path(__file__).resolve().parents[2]


def _worker(ctx, port: int, client_tls) -> tuple[MonthlyReportWorker, str]:
    cfg = cfg_with({"email": {"host": "127.0.0.1", "port": port, "username": "mamori", "sender": "box@clinic.example",
                              "recipients": ["inchou@clinic.example", "jimu@clinic.example"]}})  # fmt: skip
    (ctx.paths.keys_dir / "smtp_password").write_text("s3cret\n", encoding="utf-8")
    this_month = _apply_revision(
        ctx, (REPO / "examples" / "clinic.yaml").read_text(encoding="utf-8"), "初期設定"
    )
    first = _first_of_next_month(this_month).timestamp()
    channel = EmailChannel(cfg.notifications.email, "s3cret", timeout=60, tls=client_tls)
    return MonthlyReportWorker(ctx, cfg, clock=lambda: first, mail_channel=channel), this_month.strftime(
        "%Y-%m"
    )


def _mail_audits(ctx) -> list[dict]:
    return [
        e.detail
        for e in AuditLog(ctx.db, ctx.paths.keys_dir / "audit.key").search("reports.mail")
        if e.action == "reports.mail"
    ]


def test_report_is_mailed_with_the_pdf(ctx, tls_pair) -> None:  # noqa: F811
    server_tls, client_tls = tls_pair
    rx = SmtpReceiver(server_tls)
    rx.start()
    worker, label = _worker(ctx, rx.port, client_tls)
    report = worker.run_once()
    rx.join(60)
    assert report is not None and report.pdf is not None
    assert rx.tls_used and rx.auth == ["\0mamori\0s3cret"] and len(rx.messages) == 1
    mail = message_from_bytes(rx.messages[0][:-5], policy=policy.default)
    year, month = label.split("-")
    assert mail["Subject"] == f"[Mamori さくら内科クリニック] {year}年{int(month)}月の月次報告"
    assert mail["To"] == "inchou@clinic.example, jimu@clinic.example"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "月次報告（PDF）を添付しました" in body and "確認欄" in body
    (att,) = list(mail.iter_attachments())
    assert att.get_filename() == f"mamori-report-{label}.pdf" and att.get_content_type() == "application/pdf"
    assert att.get_content() == report.pdf.read_bytes()
    assert _mail_audits(ctx) == [{"month": label, "recipients": 2, "attached": True}]


def test_a_failed_send_keeps_the_report_and_is_audited(ctx, tls_pair) -> None:  # noqa: F811
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again: the connection is refused
    worker, label = _worker(ctx, port, tls_pair[1])
    report = worker.run_once()
    assert report is not None and has_report(ctx, label) and report.pdf is not None and report.pdf.exists()
    (audit,) = _mail_audits(ctx)
    assert audit["month"] == label and "refused" in audit["error"].lower()


@pytest.mark.parametrize(("attached", "words"), [(True, "添付しました"), (False, "ダウンロードしてください")])
def test_message_text(tmp_path: Path, attached: bool, words: str) -> None:
    msg = report_message("さくら内科クリニック", GeneratedReport("2026-10", tmp_path / "a.html", tmp_path / "a.pdf"),
                         attached)  # fmt: skip
    assert msg.subject == "[Mamori さくら内科クリニック] 2026年10月の月次報告" and words in msg.body
