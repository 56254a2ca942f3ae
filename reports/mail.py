"""Mailing the monthly report: the PDF as an attachment, Japanese subject and body, through the same SMTP
sender as the incident notifications (appliance.notify.EmailChannel: STARTTLS required, password from
keys/smtp_password).

The report stays on the box whatever happens to the mail; a failed send is logged and written to the
audit log (the clinic can see that the report was made but not delivered) and is not retried: the
report is on the box and downloadable. A PDF larger than the attachment limit is not attached; the mail
says where to find it. Non-goal: a mail queue.
"""

from __future__ import annotations

import logging
import smtplib

from appliance.audit import audit_log
from appliance.config.model import MamoriConfig, SmtpConfig
from appliance.errors import MamoriError
from appliance.notify import Attachment, EmailChannel, Message, smtp_password
from appliance.subsystem import Context
from reports.monthly import GeneratedReport

log = logging.getLogger(__name__)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # common mail servers refuse messages much above this


def report_message(clinic: str, report: GeneratedReport, attached: bool) -> Message:
    year, month = report.month.split("-")
    title = f"{year}年{int(month)}月"
    where = (f"月次報告（PDF）を添付しました（{report.pdf.name if report.pdf else ''}）。" if attached else
             "月次報告は大きすぎるため添付していません。管理画面の「報告」からダウンロードしてください。")  # fmt: skip
    body = (f"{clinic} ご担当者様\n\nMamori（{clinic}）の{title}の月次報告ができました。\n{where}\n\n"
            "医療情報システムの安全管理に関するガイドラインは、記録を定期的に確認することを求めています。\n"
            "内容を確認し、最後のページの確認欄に確認者と確認日を記入して保管してください。\n\n"
            "このメールは Mamori が自動で送信しています。")  # fmt: skip
    return Message(f"[Mamori {clinic}] {title}の月次報告", body, 3)


def _attachments(report: GeneratedReport) -> tuple[Attachment, ...]:
    if report.pdf is None or not report.pdf.exists():
        return ()
    if report.pdf.stat().st_size > MAX_ATTACHMENT_BYTES:
        log.warning(
            "reports: %s is larger than %d bytes; mailed without it", report.pdf, MAX_ATTACHMENT_BYTES
        )
        return ()
    return (Attachment(f"mamori-report-{report.month}.pdf", report.pdf.read_bytes()),)


def mail_report(
    ctx: Context, cfg: MamoriConfig, report: GeneratedReport, channel: EmailChannel | None = None
) -> bool:
    """Send the report to notifications.email's recipients; True if the server took it. Audited either way."""
    email: SmtpConfig | None = cfg.notifications.email
    if email is None:
        return False
    channel = channel or EmailChannel(email, smtp_password(ctx.paths.keys_dir))
    attachments = _attachments(report)
    msg = report_message(cfg.clinic.name, report, attached=bool(attachments))
    detail: dict[str, object] = {"month": report.month, "recipients": len(email.recipients),
                                 "attached": bool(attachments)}  # fmt: skip
    try:
        channel.send(msg, attachments)
    except (OSError, smtplib.SMTPException, MamoriError, ValueError) as exc:
        log.error("reports: mailing the %s report failed: %s", report.month, exc)
        detail["error"] = str(exc)[:300]
    audit_log(ctx).record("mamori", "reports.mail", detail, source="daemon")
    return "error" not in detail
