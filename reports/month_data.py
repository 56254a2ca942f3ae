"""Read one month of the box's records (read-only) for the monthly report.

Each area's data is asked from that area (ids.queries, vpn.queries, firewall.queries, appliance.queries,
vpn.report): the report names no table of another area. `None` (shown as 「データがありません（機能
未提供）」) is kept for a source that is not available; an empty month gives an empty list. Month boundaries
are in the clinic's time zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from appliance import queries as core_queries
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.errors import MamoriError
from appliance.subsystem import Context
from firewall import queries as fw_queries
from ids import queries as ids_queries
from ids.explain import explain
from vpn import queries as vpn_queries

log = logging.getLogger(__name__)


class MonthError(MamoriError):
    code = "reports.month"


@dataclass(frozen=True)
class Month:
    label: str  # YYYY-MM
    start: float
    end: float
    tz: str
    days: int

    def day_of(self, ts: float) -> int:
        return dt.datetime.fromtimestamp(ts, ZoneInfo(self.tz)).day


def parse_month(text: str, tz: str) -> Month:
    try:
        first = dt.datetime.strptime(text.strip(), "%Y-%m").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        raise MonthError(f"月「{text}」は YYYY-MM の形で指定してください（例: 2026-10）",
                         f"month {text!r} must be YYYY-MM (e.g. 2026-10)") from None  # fmt: skip
    nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return Month(first.strftime("%Y-%m"), first.timestamp(), nxt.timestamp(), tz, (nxt - first).days)


def previous_month(now: float, tz: str) -> Month:
    today = dt.datetime.fromtimestamp(now, ZoneInfo(tz))
    last = today.replace(day=1) - dt.timedelta(days=1)
    return parse_month(last.strftime("%Y-%m"), tz)


@dataclass(frozen=True)
class MonthData:
    month: Month
    incidents: list[dict] | None
    alerts_per_day: list[int] | None
    alerts_total: int | None
    blocks: list[dict] | None
    vpn_sessions: list[dict] | None
    vpn_volumes: dict[str, tuple[int, int]] | None  # user -> (received, sent) bytes; None if never recorded
    vendor_windows: list[dict] | None
    new_vpn_devices: list[dict] | None
    new_hosts: list[str]
    first_setup: bool  # no config before the month began: every host is "new"
    config_changes: list[dict]
    other_actions: dict[str, int]


def incidents(ctx: Context, m: Month) -> list[dict] | None:
    rows = ids_queries.incidents_between(ctx.db, m.start, m.end)
    for r in rows or []:
        e = explain(r["sid"], r["category"], r["severity"], r["signature"])
        r["title"], r["importance"], r["advice"] = e.title, e.importance, e.action
    return rows


def alerts_per_day(ctx: Context, m: Month) -> list[int] | None:
    per_day = [0] * m.days
    for ts in ids_queries.alert_times(ctx.db, m.start, m.end):
        per_day[m.day_of(ts) - 1] += 1
    return per_day


_IDS_REASON = re.compile(r"^IDS incident (\d+):")


def blocks(ctx: Context, m: Month) -> list[dict] | None:
    """Every address the firewall blocked this month (automatic by the IDS or by hand), from its trail.

    The IDS writes its reason in English for the support vendor ("IDS incident 7: sid ..."); the clinic
    reads the incident's Japanese title instead."""
    rows = [dataclasses.asdict(b) for b in fw_queries.blocks_between(ctx.db, m.start, m.end)]
    for r in rows:
        match = _IDS_REASON.match(r["detail"] or "")
        i = ids_queries.incident_row(ctx.db, int(match.group(1))) if match else None
        if i is not None:
            title = explain(i["sid"], i["category"], i["severity"], i["signature"]).title
            r["detail"] = f"侵入検知のインシデント {i['id']}: {title}"
    return rows


def vpn_sessions(ctx: Context, m: Month) -> list[dict] | None:
    return vpn_queries.sessions_between(ctx.db, m.start, m.end)


def vpn_volumes(ctx: Context, m: Month) -> dict[str, tuple[int, int]] | None:
    """Bytes received/sent per user: the tunnel monitor's "bytes" records (deltas since its last record)."""
    return vpn_queries.volumes_between(ctx.db, m.start, m.end)


def _window_report(ctx: Context, cfg: MamoriConfig | None, window_id: int) -> dict | None:
    """vpn.report's work report of one maintenance window, as plain data for the template: each host and
    port reached (first/last time, bytes each way, outside the approval or not) and the refused attempts."""
    from vpn import report

    if cfg is None:
        return None
    rep = report.window_report(ctx, cfg, window_id)
    sent, received = rep.bytes_total
    return {
        "sent": sent,
        "received": received,
        "reached": [
            {"dst": d.dst, "port": report.port_text(d), "count": d.count, "first": d.first, "last": d.last,
             "bytes": report.bytes_text(d), "outside": d.outside}
            for d in rep.reached
        ],
        "refused": [
            {"dst": d.dst, "port": report.port_text(d), "count": d.count, "first": d.first, "last": d.last}
            for d in rep.refused
        ],
        "outside": rep.outside_targets,
        "truncated": rep.truncated,
    }  # fmt: skip


def vendor_windows(ctx: Context, m: Month, cfg: MamoriConfig | None = None) -> list[dict] | None:
    rows = vpn_queries.windows_between(ctx.db, m.start, m.end)
    for r in rows:
        r["targets"] = "、".join(json.loads(r["targets"]))
        r["sessions"] = vpn_queries.sessions_of_window(ctx.db, r["id"])
        r["report"] = _window_report(ctx, cfg, r["id"])
    return rows


def new_vpn_devices(ctx: Context, m: Month) -> list[dict] | None:
    return vpn_queries.devices_created_between(ctx.db, m.start, m.end)


def _hosts_at(ctx: Context, ts: float) -> set[str]:
    text = core_queries.config_text_at(ctx.db, ts)
    if text is None:
        return set()
    try:
        return {h.name for h in parse_config(text).model.hosts}
    except MamoriError as exc:  # an old revision the current model no longer reads: say so, do not guess
        log.warning("reports: revision before %s no longer parses: %s", ts, exc.text("en"))
        return set()


def new_hosts(ctx: Context, m: Month) -> list[str]:
    """Hosts named in the config at the end of the month that were not there at its start."""
    return sorted(_hosts_at(ctx, m.end) - _hosts_at(ctx, m.start))


def first_setup(ctx: Context, m: Month) -> bool:
    return not core_queries.any_revision_before(ctx.db, m.start)


def audit_month(ctx: Context, m: Month) -> tuple[list[dict], dict[str, int]]:
    rows = core_queries.audit_between(ctx.db, m.start, m.end)
    changes, other = [], {}
    for r in rows:
        if r["action"].startswith("config."):
            detail = json.loads(r["detail"])
            r["revision"] = detail.get("revision", "")
            r["comment"] = detail.get("comment") or detail.get("error") or ""
            changes.append(r)
        else:
            other[r["action"]] = other.get(r["action"], 0) + 1
    return changes, other


def gather_month(ctx: Context, m: Month, cfg: MamoriConfig | None = None) -> MonthData:
    changes, other = audit_month(ctx, m)
    return MonthData(
        month=m, incidents=incidents(ctx, m), alerts_per_day=(per_day := alerts_per_day(ctx, m)),
        alerts_total=sum(per_day) if per_day is not None else None, blocks=blocks(ctx, m),
        vpn_sessions=vpn_sessions(ctx, m), vpn_volumes=vpn_volumes(ctx, m), vendor_windows=vendor_windows(ctx, m, cfg),
        new_vpn_devices=new_vpn_devices(ctx, m), new_hosts=new_hosts(ctx, m), first_setup=first_setup(ctx, m),
        config_changes=changes,
        other_actions=other,
    )  # fmt: skip
