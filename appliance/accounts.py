"""System accounts the daemon runs parts of itself as, and the POSIX ACL entries that let them reach their
files.

Three processes parse what came from the network and must not be root: Suricata (`mamori-ids`,
ids/account.py), the web UI (`mamori-web`) and the VPN portal (`mamori-portal`) (appliance/child_access.py).
scripts/setup.sh and the image build (scripts/image-customize.sh) make the accounts, with the same names and
options; their uids may differ between two image versions, so the daemon hands the files over again at every
start instead of trusting what the state partition says.

Traversal of directories above a state directory (a test's /tmp/pytest-of-root is 0700) is granted as a named
ACL entry `user:<account>:--x`: no listing, the mode and owner stay as they were, and systemd's
StateDirectoryMode chmod keeps it.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import struct
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    user: str
    group: str  # the primary group's name
    uid: int
    gid: int


def lookup(name: str) -> Account | None:
    """The account and its primary group, or None when the account does not exist."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        group = str(pw.pw_gid)
    return Account(user=name, group=group, uid=pw.pw_uid, gid=pw.pw_gid)


def group_id(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


# -- POSIX access ACLs (linux/posix_acl_xattr.h): no acl package on the box, the format is four fields ----
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_X = 1
_W = 2


def _read_acl(path: Path, mode: int) -> dict[tuple[int, int], int]:
    """(tag, id) -> permission bits; the mode's three classes when the file has no ACL."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise
        raw = b""
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != _ACL_VERSION:
        return {(_USER_OBJ, _NO_ID): (mode >> 6) & 7, (_GROUP_OBJ, _NO_ID): (mode >> 3) & 7,
                (_OTHER, _NO_ID): mode & 7}  # fmt: skip
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:])}


def _write_acl(path: Path, entries: dict[tuple[int, int], int]) -> None:
    body = b"".join(struct.pack("<HHI", tag, entries[(tag, ident)], ident) for tag, ident in sorted(entries))
    os.setxattr(path, _ACL_XATTR, struct.pack("<I", _ACL_VERSION) + body)


def can_traverse(path: Path, account: Account) -> bool:
    """Whether the account may search the directory (owner, named ACL entry under the mask, group, other).
    Supplementary groups are not counted: an account's access here never rests on them."""
    st = os.stat(path)
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    acl = _read_acl(path, st.st_mode)
    if (_USER, account.uid) in acl:
        return bool(acl[(_USER, account.uid)] & acl.get((_MASK, _NO_ID), 7) & _X)
    if st.st_gid == account.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def grant_traverse(path: Path, account: Account) -> None:
    """Add `user:<account>:--x` to the directory's ACL (and x to its mask); nothing else changes."""
    _grant(path, account, _X)


def grant_write(path: Path, account: Account) -> None:
    """Add `user:<account>:-w-` to the file's ACL (and w to its mask): what connecting to a unix socket
    needs. A later chmod of the file narrows the mask again: grant after it."""
    _grant(path, account, _W)


def _grant(path: Path, account: Account, perm: int) -> None:
    st = os.stat(path)
    acl = _read_acl(path, st.st_mode)
    acl[(_USER, account.uid)] = acl.get((_USER, account.uid), 0) | perm
    acl[(_MASK, _NO_ID)] = acl.get((_MASK, _NO_ID), acl[(_GROUP_OBJ, _NO_ID)]) | perm
    _write_acl(path, acl)


def reach(directory: Path, account: Account) -> list[Path]:
    """Let the account traverse every directory from / down to and including `directory`; returns those
    that needed an entry (to log)."""
    granted = []
    resolved = directory.resolve()
    for path in (*reversed(resolved.parents), resolved):
        if not can_traverse(path, account):
            grant_traverse(path, account)
            granted.append(path)
    return granted


def own_dir(directory: Path, gid: int, mode: int) -> None:
    """`directory` made if missing, root:`gid` with `mode` (chown first: the daemon's unit has no CAP_FOWNER,
    so it may chmod only what root owns)."""
    directory.mkdir(parents=True, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"{directory} is not a directory")
    if (st.st_uid, st.st_gid) != (0, gid):
        os.chown(directory, 0, gid, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(directory, mode)
