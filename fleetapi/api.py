"""/api/v1: the box's JSON API for the vendor's fleet tooling (the Ansible collection in fleet/ansible/).

Authentication: `Authorization: Bearer mamori_<id>_<secret>` only (fleetapi.tokens), never the session
cookie, so there is nothing for a cross-site request to ride on and CSRF does not apply (webui.app skips its
session, CSRF and sign-in steps for this blueprint and nothing else). HTTPS only. A bad or missing token is
answered 401, audited, and counted by the sign-in throttle (webui.throttle) per address; a held address gets
429 with Retry-After. Every authenticated request is audited as the vendor account by name (`fleet.api_request`,
source "fleet"), like a vendor's web request.

Changes take the web UI's path: ConfigService.apply with the account's permission set as `authority`, the
same validation, revision and audit, always with commit-confirm (`confirm_within` seconds: unconfirmed, the
box puts the previous revision back by itself). On top, three refusals the web UI does not need:
- the clinic's switch `fleet.allow_changes` is off (reads, validate and diff still answer);
- another change is still waiting for confirmation (one change in flight per box);
- the change would cut the management link (fleetapi.linkguard) and `force_link_cut` is not set.
A confirmation names its revision and lands only on that one, and only if the same account applied it
(checked by ConfigService.confirm under the apply lock): a vendor never confirms an administrator's change.

Top-level sections missing from the posted config are kept as they are on the box: a vendor's desired state
in git names what he manages and need not carry `mgmt:`, `ssh:` or `fleet:`, which are the clinic's.
"""

from __future__ import annotations

import logging
from typing import Any

import yaml
from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from appliance.config.authority import changed_paths, permissions_for
from appliance.config.load import parse_config
from appliance.errors import ConfigError, MamoriError, NotFoundError
from appliance.revisions import Revision, normalized
from appliance.service import ConfirmRefused
from fleetapi.linkguard import link_cuts
from fleetapi.tokens import TokenStore
from webui import actions, core
from webui import context as wctx
from webui import throttle as sign_in_throttle

log = logging.getLogger(__name__)
bp = Blueprint("fleetapi", __name__, url_prefix="/api/v1")

THROTTLE_NAME = "fleet-api-token"  # the throttle's "name" for token failures (kept as a keyed hash there)
READ_PERMISSION = "settings.view"
MIN_CONFIRM, MAX_CONFIRM = 30, 900
MAX_REVISION = 2**63 - 1  # SQLite's largest INTEGER: a larger number from a request is no revision at all
SOURCE = "fleet"


class ApiError(Exception):
    """An answer other than 200: HTTP status, stable code, Japanese and English, and extra JSON fields."""

    def __init__(self, status: int, code: str, ja: str, en: str, **extra: Any) -> None:
        super().__init__(en)
        self.status, self.code, self.ja, self.en, self.extra = status, code, ja, en, extra


NOT_ALLOWED = (
    "この機器では、保守業者による設定の一括変更が許可されていません。クリニックの管理者が 設定 → 保守業者の一括変更 で"
    "「保守業者による設定の一括変更を許可する」をオンにするまで、変更は受け付けません（読み取りと確認はできます）。",
    "This box does not allow fleet changes by the vendor: the clinic's administrator must switch on "
    "fleet.allow_changes (「保守業者による設定の一括変更を許可する」). Reads, validate and diff still work.",
)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Any:
    body = {"ok": False, "error": {"code": exc.code, "ja": exc.ja, "en": exc.en}, **exc.extra}
    response = jsonify(body)
    response.status_code = exc.status
    if exc.status == 429:
        response.headers["Retry-After"] = str(exc.extra.get("retry_after", 60))
    return response


@bp.errorhandler(MamoriError)
def _mamori_error(exc: MamoriError) -> Any:
    status = 404 if isinstance(exc, NotFoundError) else 400
    return _api_error(ApiError(status, exc.code, exc.text("ja"), exc.text("en")))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    return _api_error(ApiError(exc.code or 500, "http", exc.name, exc.description or exc.name))


@bp.before_request
def _authenticate() -> None:
    if not request.is_secure:
        raise ApiError(
            403, "fleet.https_only", "API は HTTPS でだけ使えます", "the API is served over HTTPS only"
        )
    throttle = sign_in_throttle.current()
    remote = wctx.remote()
    hold = throttle.hold(THROTTLE_NAME, remote)
    if hold is not None:
        raise ApiError(429, "fleet.throttled", f"鍵の誤りが続いたため、{hold.minutes} 分ほど待ってください",
                       f"too many bad tokens from this address; retry in {hold.seconds} s",
                       retry_after=hold.seconds)  # fmt: skip
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    found = (
        TokenStore(wctx.ctx().db, clock=wctx.now).authenticate(token) if scheme.lower() == "bearer" else None
    )
    if found is None:
        throttle.failure(THROTTLE_NAME, remote)
        wctx.audit("fleet.api_denied", {"method": request.method, "path": request.path}, actor="anonymous")
        raise ApiError(401, "fleet.unauthorized", "API の鍵が正しくないか、無効になっています",
                       "the API token is wrong, revoked, or its vendor account is disabled or expired")  # fmt: skip
    info, account = found
    g.user, g.fleet_token = account, info.id
    audit("fleet.api_request", {"method": request.method, "path": request.path})


def audit(action: str, detail: dict[str, Any]) -> None:
    """Audit as the vendor account by name, source "fleet", with the token that was used."""
    wctx.audit_log().record(
        wctx.actor_name(), action, {**detail, "token": g.fleet_token}, source=SOURCE, remote=wctx.remote()
    )


def _authority() -> frozenset[str]:
    return permissions_for(g.user.role, g.user.grants)


def _need(permission: str) -> None:
    if permission not in _authority():
        audit("fleet.forbidden", {"path": request.path, "needs": permission})
        raise ApiError(403, "fleet.forbidden", "このアカウントには設定を見る権限（設定）がありません",
                       f"this account lacks {permission} (ask the clinic to grant 設定)")  # fmt: skip


def _revision(rev: Revision | None) -> dict[str, Any] | None:
    if rev is None:
        return None
    return {"id": rev.id, "status": rev.status, "author": rev.author, "source": rev.source,
            "comment": rev.comment, "created_at": rev.created_at, "sha256": rev.sha256}  # fmt: skip


def _live_data() -> dict[str, Any]:
    text = core.live_text()
    data = yaml.safe_load(text) if text else {}
    return data if isinstance(data, dict) else {}


def _allowed() -> bool:
    cfg = core.live_config()
    return bool(cfg and cfg.fleet.allow_changes)


def _proposed_text() -> str:
    """The posted config (a mapping, or YAML text of one) with the sections it leaves out taken from the box."""
    body = request.get_json(silent=True)
    given = body.get("config") if isinstance(body, dict) else None
    if isinstance(given, str):
        try:
            given = yaml.safe_load(given)
        except yaml.YAMLError as exc:
            raise ApiError(
                422, "config.yaml", "設定が YAML として読めません", f"the config is not YAML: {exc}"
            ) from None
    if not isinstance(given, dict) or not given:
        raise ApiError(400, "fleet.body", '本文は {"config": {...}} の形にしてください',
                       'the body must be JSON {"config": {...}}')  # fmt: skip
    merged = {**{k: v for k, v in _live_data().items() if k not in given}, **given}
    return yaml.safe_dump(merged, allow_unicode=True, sort_keys=False)


def _parse(text: str) -> Any:
    try:
        return parse_config(text)
    except ConfigError as exc:
        issues = [{"path": i.path, "ja": i.message.ja, "en": i.message.en} for i in exc.issues]
        raise ApiError(422, exc.code, exc.text("ja"), exc.text("en"), issues=issues) from None


def _unchanged(text: str) -> bool:
    live = core.live_text()
    return live is not None and normalized(live) == normalized(text)


def _refusal(loaded: Any, force: bool) -> ApiError | None:
    """Why applying this config now would be refused (the clinic's switch, a change in flight, the authority
    table, a cut of the link), or None."""
    svc = core.service()
    if not _allowed():
        return ApiError(403, "fleet.not_allowed", *NOT_ALLOWED)
    pending = svc.pending()
    if pending is not None:
        return ApiError(409, "fleet.pending", f"確定待ちの変更（リビジョン {pending['revision']}）があります。"
                        "確定されるか元に戻るまで待ってください",
                        f"revision {pending['revision']} is still waiting for confirmation; wait until it is "
                        "confirmed or rolled back", revision=pending["revision"])  # fmt: skip
    refused = svc.refusal(loaded.model, _authority())
    if refused is not None:
        return ApiError(403, refused.code, refused.text("ja"), refused.text("en"), **refused.detail())
    cuts = link_cuts(svc.baseline(), loaded.model)
    if cuts and not force:
        return ApiError(409, "fleet.link_cut",
                        "この変更は保守業者の管理接続を切るおそれがあるため、受け付けません: "
                        + "／".join(c.ja for c in cuts) + "。どうしても行う場合は force_link_cut を指定してください"
                        "（確定できなければ機器が自動で元に戻します）。",
                        "this change would cut the management link: " + "; ".join(c.en for c in cuts)
                        + ". Set force_link_cut to apply it anyway (unconfirmed, the box rolls it back by itself).",
                        link_cuts=[c.__dict__ for c in cuts])  # fmt: skip
    return None


def _body_flag(name: str) -> bool:
    body = request.get_json(silent=True)
    return isinstance(body, dict) and body.get(name) is True


# -- reads ---------------------------------------------------------------------------------------------


@bp.get("/config")
def get_config() -> Any:
    _need(READ_PERMISSION)
    svc = core.service()
    live = svc.current()
    return jsonify(ok=True, revision=_revision(live), config=_live_data(), allow_changes=_allowed(),
                   pending=svc.pending(), account=g.user.name)  # fmt: skip


@bp.get(
    "/revisions/<rev_id>"
)  # not <int:>: the web UI bounds those, and a token client wants JSON, not a 404 page
def get_revision(rev_id: str) -> Any:
    _need(READ_PERMISSION)
    svc = core.service()
    number = int(rev_id) if rev_id.isascii() and rev_id.isdigit() else None
    rev = svc.revisions.get(number) if number is not None and number <= MAX_REVISION else None
    if rev is None:
        raise ApiError(404, "fleet.no_revision", f"リビジョン {rev_id} はありません", f"no revision {rev_id}")
    live = svc.current()
    return jsonify(ok=True, revision=_revision(rev), live=_revision(live), pending=svc.pending())


@bp.post("/config/validate")
def validate() -> Any:
    _need(READ_PERMISSION)
    loaded = _parse(_proposed_text())
    warnings = [{"path": w.path, "ja": w.message.ja, "en": w.message.en} for w in loaded.warnings]
    return jsonify(ok=True, valid=True, warnings=warnings)


@bp.post("/config/diff")
def diff() -> Any:
    """What applying would change, and whether it would be refused now (check mode asks this)."""
    _need(READ_PERMISSION)
    text = _proposed_text()
    loaded = _parse(text)
    svc = core.service()
    if _unchanged(text):
        return jsonify(
            ok=True, changed=False, diff="", paths=[], refusal=None, revision=_revision(svc.current())
        )
    refusal = _refusal(loaded, _body_flag("force_link_cut"))
    paths = [".".join(p) for p in changed_paths(svc.baseline(), loaded.model)]
    why = {"code": refusal.code, "ja": refusal.ja, "en": refusal.en, **refusal.extra} if refusal else None
    return jsonify(ok=True, changed=True, diff=svc.diff(text), paths=paths, refusal=why,
                   revision=_revision(svc.current()))  # fmt: skip


# -- changes ---------------------------------------------------------------------------------------------


@bp.post("/config/apply")
def apply() -> Any:
    _need(READ_PERMISSION)
    body = request.get_json(silent=True) or {}
    seconds = body.get("confirm_within") if isinstance(body, dict) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not MIN_CONFIRM <= seconds <= MAX_CONFIRM:
        raise ApiError(400, "fleet.confirm_within", f"confirm_within は {MIN_CONFIRM}〜{MAX_CONFIRM} 秒で指定してください"
                       "（API の変更は必ず確定待ちで適用します）",
                       f"confirm_within must be {MIN_CONFIRM}..{MAX_CONFIRM} seconds (API changes are always "
                       "applied with commit-confirm)")  # fmt: skip
    text = _proposed_text()
    loaded = _parse(text)
    svc = core.service()
    if _unchanged(text):
        return jsonify(ok=True, changed=False, revision=_revision(svc.current()))
    refusal = _refusal(loaded, _body_flag("force_link_cut"))
    if refusal is not None:
        audit("fleet.refused", {"reason": refusal.code, **refusal.extra})
        raise refusal
    cuts = link_cuts(svc.baseline(), loaded.model)
    comment = str(body.get("comment") or "保守業者の一括変更（API）")[:200]
    if cuts:
        audit("fleet.link_cut_forced", {"cuts": [c.path for c in cuts], "comment": comment})
    try:
        rev = actions.apply_config(wctx.ctx(), text, g.user.name, SOURCE, comment, confirm_seconds=seconds,
                                   remote=wctx.remote())  # fmt: skip
    except MamoriError as exc:
        status = 403 if exc.code == "config.refused" else 400
        raise ApiError(status, exc.code, exc.text("ja") + "（何も変更していません）",
                       exc.text("en") + " (nothing was changed)") from None  # fmt: skip
    pending = svc.pending()
    return jsonify(ok=True, changed=True, revision=_revision(rev), deadline=pending["deadline"] if pending else None,
                   link_cuts=[c.path for c in cuts])  # fmt: skip


@bp.post("/config/confirm")
def confirm() -> Any:
    """Confirm the pending revision named in the body, and only that one, and only if this account started
    it (never an administrator's or another vendor's change). ConfigService.confirm checks both under the
    apply lock, at the moment of confirming; a refusal is audited (`fleet.refused`) and answered 409
    (`fleet.not_pending`) or 403 (`fleet.not_yours`)."""
    _need(READ_PERMISSION)
    body = request.get_json(silent=True)
    wanted = body.get("revision") if isinstance(body, dict) else None
    if not isinstance(wanted, int) or isinstance(wanted, bool) or not 1 <= wanted <= MAX_REVISION:
        raise ApiError(400, "fleet.body", '本文は {"revision": 番号} の形にしてください',
                       'the body must be JSON {"revision": <number>}')  # fmt: skip
    svc = core.service()
    try:
        rev = actions.confirm_config(
            wctx.ctx(), g.user.name, SOURCE, remote=wctx.remote(), revision=wanted, only_own=True
        )
    except ConfirmRefused as exc:
        code = "fleet." + exc.code.partition(".")[2]  # fleet.not_pending, fleet.not_yours
        audit("fleet.refused", {"reason": code, "revision": wanted, "status": exc.status})
        raise ApiError(403 if code == "fleet.not_yours" else 409, code, exc.text("ja"), exc.text("en"),
                       revision=_revision(svc.revisions.get(wanted))) from None  # fmt: skip
    return jsonify(ok=True, revision=_revision(rev))
