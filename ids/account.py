"""The account Suricata runs as, and the directories opened to it.

Suricata parses hostile traffic, so it must not run as root. The daemon starts it with `--user`/`--group`
of a system account (`mamori-ids`, made by scripts/setup.sh and by the image build); Suricata opens its
capture sockets as root and then drops to that account itself (libcap-ng), keeping only CAP_NET_RAW,
CAP_NET_ADMIN and CAP_SYS_NICE. Everything it opens after that is opened as the account: the rules and
threshold file (loading and `reload-rules`), its YAML, the EVE directory (after rotation it creates a new
eve.json) and the directory of its command socket and pid file.

What the account may do, and no more (the daemon runs with UMask=0077, so this is granted explicitly):
- traverse the state directory and run/ to reach run/suricata (a POSIX ACL entry `user:mamori-ids:--x`,
  no listing; the state directory stays root's and systemd's StateDirectoryMode chmod keeps the entry);
- read run/suricata and run/suricata/rules (root:mamori-ids 0750): it cannot replace its YAML, which
  Suricata reads as root before dropping privileges;
- write run/suricata/log and run/suricata/control (root:mamori-ids 2770; its EVE file is its own). The pid
  file, which Suricata writes while still root, stays in run/suricata, where the account cannot plant a
  link (Suricata cannot remove it when it stops; the supervisor does before each start).
The daemon, root with CAP_DAC_OVERRIDE, reads the EVE files and uses the socket the account made.

When the account does not exist (a developer machine without `make setup`) Suricata runs as root, as
before, and the daemon logs it once. `suricata -T` (the rule check in a staging directory before anything
goes live) runs as the account too: `open_tree_read_only` lets it read the staged files and nothing more.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from appliance.accounts import Account, can_traverse, own_dir, reach
from appliance.accounts import lookup as lookup_account
from ids.render import SuricataPaths

log = logging.getLogger(__name__)

IDS_ACCOUNT = "mamori-ids"
IdsAccount = Account  # the name the IDS's callers use
__all__ = ["IDS_ACCOUNT", "IdsAccount", "can_traverse", "lookup", "open_tree_read_only", "prepare"]


def lookup(name: str | None = None) -> Account | None:
    """The account (default IDS_ACCOUNT) and its primary group, or None when the account does not exist."""
    return lookup_account(name or IDS_ACCOUNT)


def _open_dir(directory: Path, account: IdsAccount, mode: int) -> None:
    own_dir(directory, account.gid, mode)


def open_tree_read_only(top: Path, account: IdsAccount) -> None:
    """Let the account read a staging tree the daemon wrote (UMask 0077 made it root's alone): every
    directory root:<account> 0750, every file root:<account> 0640. Links are not followed; the tree is
    the daemon's own temporary directory, which nobody else can write."""
    for directory, _dirs, files in os.walk(top):
        _open_dir(Path(directory), account, 0o750)
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            os.chown(path, 0, account.gid, follow_symlinks=False)
            os.chmod(path, 0o640)


def prepare(live: SuricataPaths, account: IdsAccount | None) -> None:
    """Make Suricata's directories, opened to the account as the module docstring says (root only if None)."""
    for directory in (live.base, live.rules.parent, live.log_dir, live.control_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if account is None:
        return
    for ancestor in reach(live.base.parent, account):
        log.info("%s may now traverse %s to reach Suricata's files", account.user, ancestor)
    _open_dir(live.base, account, 0o750)
    _open_dir(live.rules.parent, account, 0o750)
    _open_dir(live.log_dir, account, 0o2770)
    _open_dir(live.control_dir, account, 0o2770)
    try:
        eve = os.lstat(live.eve)
    except FileNotFoundError:
        return
    if stat.S_ISREG(eve.st_mode) and eve.st_uid != account.uid:
        # Written by a Suricata that ran as root (before the account existed): it appends to it again.
        os.chown(live.eve, account.uid, account.gid, follow_symlinks=False)
