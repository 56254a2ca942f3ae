"""The stored monthly reports for the web UI (appliance.actions): the list, and one opened for download.

Run by the daemon: the reports are written 0640 under the state directory, root's (reports.monthly). A
report is named by its file name only, which must be `YYYY-MM.html` or `YYYY-MM.pdf` and a regular file in
the reports directory (opened without following a link); the download is its descriptor handed over with
the answer (registry.FD_KEY). Viewing needs audit.view, as the checklist page.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from typing import Any

from appliance.actions.registry import FD_KEY, ActionEnv, ActionError, action
from appliance.fileio import open_regular
from webui.action_accounts import require

ACTION_NAMES = ("reports.monthly_list", "reports.monthly_open")
PERMISSION = "audit.view"
REPORT_NAME = re.compile(r"^(\d{4}-\d{2})\.(html|pdf)$")
NO_REPORT = ActionError("その報告書はありません", "no such monthly report")


@dataclass(frozen=True)
class ListArgs:
    actor: str


@action("reports.monthly_list", ListArgs)
def monthly_list(env: ActionEnv, args: ListArgs) -> dict[str, Any]:
    """[name, mtime] of every stored monthly report (the page sorts and formats them)."""
    from reports.monthly import reports_dir

    require(env, args.actor, PERMISSION)
    directory = reports_dir(env.ctx)
    if not directory.is_dir():
        return {"reports": []}
    found = []
    for p in directory.iterdir():
        st = p.lstat()  # a link is not a report, wherever it points
        if REPORT_NAME.match(p.name) and stat.S_ISREG(st.st_mode):
            found.append([p.name, st.st_mtime])
    return {"reports": found}


@dataclass(frozen=True)
class OpenArgs:
    actor: str
    name: str


@action("reports.monthly_open", OpenArgs)
def monthly_open(env: ActionEnv, args: OpenArgs) -> dict[str, Any]:
    """One stored report opened for reading, handed over as a descriptor."""
    from reports.monthly import reports_dir

    require(env, args.actor, PERMISSION)
    if not REPORT_NAME.match(args.name):
        raise NO_REPORT
    try:
        fd = open_regular(reports_dir(env.ctx) / args.name)
    except OSError:
        raise NO_REPORT from None
    return {"name": args.name, FD_KEY: fd}
