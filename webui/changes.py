"""Proposed config changes: every page that changes the box builds a new config text, and the one review
page shows the diff and applies it through ConfigService (with the confirm timer), so every change goes
the same way whichever page made it.

Proposals are kept in the database (a config can be larger than a cookie), keyed by a random token held in
the proposer's session, and expire after an hour. The permission the proposing page needed is stored with
it and checked again at apply time.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from flask import session

from webui import context as wctx

TTL = 3600


@dataclass(frozen=True)
class Proposal:
    token: str
    text: str
    comment: str
    permission: str
    author: str
    created: float


def propose(text: str, comment: str, permission: str) -> str:
    token = secrets.token_urlsafe(16)
    data = {"text": text, "comment": comment, "permission": permission,
            "author": wctx.user().name, "created": wctx.now()}  # fmt: skip
    wctx.ctx().db.set_kv(f"webui.proposal.{token}", json.dumps(data, ensure_ascii=False))
    session["proposal"] = token
    return token


def load(token: str) -> Proposal | None:
    if not token or session.get("proposal") != token:
        return None
    raw = wctx.ctx().db.get_kv(f"webui.proposal.{token}")
    if raw is None:
        return None
    data = json.loads(raw)
    if wctx.now() - data["created"] > TTL or data["author"] != wctx.user().name:
        return None
    return Proposal(token=token, **data)


def discard(token: str) -> None:
    wctx.ctx().db.set_kv(f"webui.proposal.{token}", None)
    session.pop("proposal", None)
