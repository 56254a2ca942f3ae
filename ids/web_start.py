"""What the web UI reads of the IDS's files itself: the age of the installed rules (ids.freshness, a stat of
`<state>/ids/sources/<source>`), shown on the dashboard and the IDS settings. The daemon's unit makes
everything 0700 (UMask=0077), so before each start of the web UI the daemon lets its account traverse the
directories down to the sources (ACL `user:<account>:--x`, appliance.accounts.reach): no listing, no file
read."""

from __future__ import annotations

import logging

from appliance.accounts import Account, reach
from appliance.subsystem import Context
from ids.sources import sources_dir

log = logging.getLogger(__name__)


def before_web_start(ctx: Context, account: Account | None) -> None:
    if account is None:
        return
    directory = sources_dir(ctx.paths)
    directory.mkdir(parents=True, exist_ok=True)
    for path in reach(directory, account):
        log.info("%s may now traverse %s (the rules' age)", account.user, path)
