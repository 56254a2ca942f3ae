"""Proposed config changes: every page that changes the box builds a new config text, and the one review
page shows the diff and applies it through ConfigService (with the confirm timer), so every change goes
the same way whichever page made it.

Proposals are kept in the database (a config can be larger than a cookie), keyed by a random token held in
the proposer's session, and expire after an hour. The permission the proposing page needed is stored with
it and checked again at apply time.

Which sections the change touches is checked against the proposer's rights twice: here, so that he hears
it at once (`ConfigRefused`, audited, shown by the blueprint's handler), and at apply time inside
ConfigService (`authority=`), which is the check that matters: the live config may have moved meanwhile.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from flask import session

from appliance.config.load import parse_config
from appliance.errors import ConfigError
from webui import context as wctx
from webui import core
from webui.permissions import permissions_of

TTL = 3600
PROPOSAL_PREFIX = "webui.proposal."  # kv keys of proposed changes (pruned by webui.retention)


@dataclass(frozen=True)
class Proposal:
    token: str
    text: str
    comment: str
    permission: str
    author: str
    created: float


def refuse_early(text: str, comment: str) -> None:
    """Raise ConfigRefused (and audit it) if the signed-in account may not make this change. A text that
    does not validate passes: the review page and ConfigService say what is wrong with it."""
    try:
        model = parse_config(text).model
    except ConfigError:
        return
    refused = core.service().refusal(model, permissions_of(wctx.user()))
    if refused is not None:
        wctx.audit("config.refused", {**refused.detail(), "comment": comment, "stage": "propose"})
        raise refused


def propose(text: str, comment: str, permission: str) -> str:
    """Store a change for the review page; raises ConfigRefused if it touches what the proposer may not."""
    refuse_early(text, comment)
    token = secrets.token_urlsafe(16)
    data = {"text": text, "comment": comment, "permission": permission,
            "author": wctx.user().name, "created": wctx.now()}  # fmt: skip
    wctx.ctx().db.set_kv(f"{PROPOSAL_PREFIX}{token}", json.dumps(data, ensure_ascii=False))
    session["proposal"] = token
    return token


def load(token: str) -> Proposal | None:
    if not token or session.get("proposal") != token:
        return None
    raw = wctx.ctx().db.get_kv(f"{PROPOSAL_PREFIX}{token}")
    if raw is None:
        return None
    data = json.loads(raw)
    if wctx.now() - data["created"] > TTL or data["author"] != wctx.user().name:
        return None
    return Proposal(token=token, **data)


def discard(token: str) -> None:
    wctx.ctx().db.set_kv(f"{PROPOSAL_PREFIX}{token}", None)
    session.pop("proposal", None)
