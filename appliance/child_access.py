"""The accounts the web UI and the VPN portal run as, and the files opened to them.

Both parse what came from the network, so neither runs as root (appliance.unprivileged starts them without
any capability, under these accounts). Three accounts, made by scripts/setup.sh and the image build:
- `mamori-web` (the web UI): its own group; in `mamori-db`.
- `mamori-portal` (the VPN portal): its own group only.
- the group `mamori-db`: may write the state database, and connect to the action socket.

What each may do, and no more (the daemon's unit has UMask=0077, so every grant is explicit, made again by
`hand_over` before each start: a restore or an update with other uids may have changed owners):
- the web UI traverses the state directory and its ancestors, both traverse run/ and its ancestors (named
  ACL entries `user:<account>:--x`, appliance.accounts.reach): the action socket is in run/ (root:mamori-db
  0660, and `user:mamori-portal:-w-` for the portal: appliance.actions.server);
- the web UI writes the database: `db/` is root:mamori-db 3770 (setgid: new -wal and -shm files are the
  group's; sticky: it cannot remove or rename the database, which is root's), its files root:mamori-db 0660;
- the web UI reads keys/web.crt, web.key, web_secret.key and audit.key: keys/ is root:mamori-web 2710
  (traverse, no listing), those four root:mamori-web 0640; every other key stays 0600, root's alone. The
  daemon makes web_secret.key and audit.key before the web UI starts, so the web UI never writes there;
- the web UI writes its upload spool (`uploads/`, its own 0700: appliance.actions.spool).
What the portal cannot: open the database (it is the one page a device reaches before its user signs in;
the daemon answers its questions, vpn.portal_view), read any key (the web UI's cookie key would let it forge
a sign-in), call any action but its four (appliance.actions.server's per-uid list).

Where the accounts do not exist (a developer machine without `make setup`) both run as uid 0 without
capabilities, as before, and the daemon says so in its log.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.accounts import Account, group_id, lookup, own_dir, reach
from appliance.fileio import change_regular, create_once
from appliance.paths import Paths

log = logging.getLogger(__name__)

WEB_USER = "mamori-web"
PORTAL_USER = "mamori-portal"
DB_GROUP = "mamori-db"
WEB_KEYS = ("web.crt", "web.key", "web_secret.key", "audit.key")
MADE_HERE = ("web_secret.key", "audit.key")  # 32 random bytes each (webui.security, appliance.audit)
DB_DIR_MODE = 0o3770
KEYS_DIR_MODE = 0o2710
SHARED_FILE_MODE_DB = 0o660
SHARED_FILE_MODE_KEY = 0o640


@dataclass(frozen=True)
class ChildAccounts:
    web: Account
    portal: Account
    db_gid: int


def lookup_children() -> ChildAccounts | None:
    """The three, or None when any is missing (all come from one setup step)."""
    web, portal, db_gid = lookup(WEB_USER), lookup(PORTAL_USER), group_id(DB_GROUP)
    if web is None or portal is None or db_gid is None:
        return None
    return ChildAccounts(web=web, portal=portal, db_gid=db_gid)


def _own_file(path: Path, gid: int, mode: int) -> None:
    """root:`gid` with `mode` if it is a regular file (appliance.fileio.change_regular: through an O_PATH
    descriptor, which drops none of the daemon's own SQLite locks); a link or anything else planted there is
    left and logged (SQLite opens its files with O_NOFOLLOW, so such a link only breaks the database, it never
    redirects a write)."""
    if not change_regular(path, mode, (0, gid)) and os.path.lexists(path):
        log.error("%s is not a regular file; left as it is", path)


def hand_over(paths: Paths, children: ChildAccounts, make_keys: bool = True) -> None:
    """Open to the web UI and the portal what the module docstring says; called before each start and after
    a restore (it makes no key then: a restore gives back the box's own; nor run/, which comes back with the
    daemon's next start, and this again before the web UI's)."""
    for account, directories in (
        (children.web, (paths.state_dir, paths.run_dir)),
        (children.portal, (paths.run_dir,)),
    ):
        for directory in directories:
            if directory.is_dir():
                for path in reach(directory, account):
                    log.info("%s may now traverse %s", account.user, path)
    own_dir(paths.db_dir, children.db_gid, DB_DIR_MODE)
    for suffix in ("", "-wal", "-shm"):
        _own_file(Path(f"{paths.db}{suffix}"), children.db_gid, SHARED_FILE_MODE_DB)
    own_dir(paths.keys_dir, children.web.gid, KEYS_DIR_MODE)
    for name in MADE_HERE if make_keys else ():  # the web UI reads them and cannot make them
        create_once(paths.keys_dir / name, secrets.token_bytes(32), mode=SHARED_FILE_MODE_KEY)
    for name in WEB_KEYS:
        _own_file(paths.keys_dir / name, children.web.gid, SHARED_FILE_MODE_KEY)


def prepare(
    paths: Paths, role: str, before: Callable[[Account | None], None] = lambda account: None
) -> tuple[Account | None, tuple[int, ...]]:
    """Before a start of the web UI (`role` "web") or the portal ("portal"): `before(account)` (what the
    areas make or open for it), `hand_over`, then the account it runs as and its supplementary groups;
    (None, ()) where the accounts are missing (logged)."""
    children = lookup_children()
    if children is None:
        log.warning("accounts %s, %s or group %s missing: the %s runs as uid 0 (run `make setup`)",
                    WEB_USER, PORTAL_USER, DB_GROUP, role)  # fmt: skip
        before(None)
        return None, ()
    # The portal gets its own group alone: no database.
    account, groups = (children.web, (children.db_gid,)) if role == "web" else (children.portal, ())
    before(account)
    hand_over(paths, children)
    return account, groups
