"""ファイアウォール: zones and their ports, the zone-to-zone default policy as a table, named hosts and
services, the clinic's own rules (add / remove go through the review page), and blocked addresses."""

from __future__ import annotations

from typing import Any

import yaml
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from appliance.config.catalogue import BUILTIN_SERVICES
from appliance.config.types import ALL_ZONES
from appliance.zones import ZONE_LABELS
from firewall.policy import forward_default
from webui import changes, core, incident_actions, sources
from webui import context as wctx
from webui.context import requires

bp = Blueprint("firewall", __name__, url_prefix="/firewall")
VERDICTS = {
    "accept": ("許可", "ok"),
    "outbound": ("許可（危険なポートを除く）", "ok"),
    "drop": ("遮断", "no"),
}


@bp.route("/")
@requires("firewall.view")
def index() -> Any:
    cfg = core.live_config()
    zones = [z for z in ALL_ZONES if cfg and (cfg.interfaces_in(z) or (z == "vpn" and cfg.vpn.enabled))]
    policy = {(s, d): VERDICTS[forward_default(s, d)] for s in zones for d in zones}
    return render_template(
        "firewall/index.html", cfg=cfg, zones=zones, zone_names=ZONE_LABELS, policy=policy,
        builtin=BUILTIN_SERVICES, blocks=sources.active_blocks(wctx.ctx().db, wctx.now()),
        can_unblock=incident_actions.blocking_available(),
    )  # fmt: skip


def _edit_rules(mutate: Any, comment: str) -> Any:
    text = core.live_text()
    if text is None:
        abort(409)
    data = yaml.safe_load(text)
    rules = data.setdefault("firewall", {}).setdefault("rules", [])
    mutate(rules)
    token = changes.propose(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), comment, "firewall.edit"
    )
    return redirect(url_for("settings.review", token=token))


@bp.route("/rules", methods=["POST"])
@requires("firewall.edit")
def add_rule() -> Any:
    rule = {k: request.form.get(k, "").strip() for k in ("src", "dst", "service", "comment")}
    rule = {k: v for k, v in rule.items() if v}
    return _edit_rules(
        lambda rules: rules.append(rule), f"許可ルールを追加: {rule.get('src')} → {rule.get('dst')}"
    )


@bp.route("/rules/<int:index>/delete", methods=["POST"])
@requires("firewall.edit")
def delete_rule(index: int) -> Any:
    def mutate(rules: list) -> None:
        if not 0 <= index < len(rules):
            abort(404)
        rules.pop(index)

    return _edit_rules(mutate, f"許可ルール {index + 1} を削除")


@bp.route("/blocks/unblock", methods=["POST"])
@requires("firewall.edit")
def unblock() -> Any:
    """Lift a block from the list of blocked addresses (the same path as from an alert)."""
    ip = request.form.get("ip", "").strip()[:64]
    if not sources.is_blocked(wctx.ctx().db, ip, wctx.now()):
        abort(404)
    incident_actions.block(wctx.ctx(), {"src_ip": ip, "id": None}, unblock=True, actor=wctx.user().name)
    wctx.audit("firewall.unblock", {"ip": ip})
    flash(f"{ip} の遮断を解除しました。", "ok")
    return redirect(url_for("firewall.index"))
