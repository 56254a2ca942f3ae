"""What other parts (the web UI) call: the checklist, its HTML, the device ledger as CSV, and answers.

A thin layer over gather/checklist/render so that a page handler needs one call and no knowledge of
where each piece of evidence comes from.
"""

from __future__ import annotations

import csv
import io

from appliance.clock import wall
from appliance.subsystem import Context
from reports.answers import set_answer
from reports.checklist import Item, build_checklist, summary
from reports.gather import gather_snapshot
from reports.render import render_html
from timesvc.status import ClockState

LEDGER_COLUMNS = ("名前", "IPアドレス", "MACアドレス", "ゾーン", "説明", "出どころ")


def checklist(ctx: Context, now: float | None = None, clock: ClockState | None = None) -> list[Item]:
    """Every checklist item with its state and evidence, judged now (`clock`: reports.gather_snapshot)."""
    return build_checklist(gather_snapshot(ctx, wall() if now is None else now, clock))


def checklist_html(ctx: Context, now: float | None = None, clock: ClockState | None = None) -> str:
    """A self-contained printable page (A4, Japanese) of the checklist."""
    now = wall() if now is None else now
    snap = gather_snapshot(ctx, now, clock)
    items = build_checklist(snap)
    return render_html("checklist.html", clinic=snap.clinic or "（未設定）", generated=now, tz=snap.timezone,
                       revision=snap.config_revision, items=items, counts=summary(items))  # fmt: skip


def _cell(value: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula; names and descriptions come from
    anyone who can edit the config, and DHCP names from the devices themselves."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def ledger_csv(ctx: Context, clock: ClockState | None = None) -> str:
    """The device ledger (2①) as CSV with a BOM, so that Excel on a clinic PC opens the Japanese correctly."""
    item = next(i for i in checklist(ctx, clock=clock) if i.key == "2-1")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LEDGER_COLUMNS)
    writer.writerows([[_cell(v) for v in row] for row in item.rows])
    return "\ufeff" + out.getvalue()


__all__ = ["checklist", "checklist_html", "ledger_csv", "set_answer"]
