"""The two things a clinic does with the link, shared by the CLI and the web page: enrol it from a code
(a new config text, applied through ConfigService so it is validated, recorded and audited like any
change) and cut it (the interface goes down first, at once, then the config says `enabled: false`).

Cutting does not wait for the config change: if that change fails for an unrelated reason (another
engine refusing), the link is down anyway and the error says the config still names it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection

import yaml

from appliance.audit import audit_log
from appliance.clock import wall
from appliance.config.load import parse_config
from appliance.errors import MamoriError
from appliance.revisions import Revision, RevisionStore
from appliance.service import ConfigService
from appliance.subsystem import Context
from metrics.model import parse_listen
from mgmt.code import Enrolment
from mgmt.model import DEFAULT_INTERFACE
from vpn.wg import WgInterface
from webui.yamlpath import replace_section

log = logging.getLogger(__name__)
CUT_COMMENT = "保守業者の管理接続を切る"


def with_section(text: str, section: dict, name: str = "mgmt") -> str:
    """`text` with only its `name:` section (`mgmt:` unless told) replaced (every other line untouched)."""
    block = yaml.safe_dump({name: section}, allow_unicode=True, sort_keys=False, width=100000)
    replaced = replace_section(text, name, block)
    if replaced is not None:
        return replaced
    data = yaml.safe_load(text) or {}
    data[name] = section
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def live_text(ctx: Context) -> str:
    rev = RevisionStore(ctx.db).live()
    if rev is None:
        raise MamoriError(
            "まだ設定が適用されていません", "no configuration has been applied yet", code="mgmt.nolive"
        )
    return rev.config_text


def enrolled_text(text: str, enrolment: Enrolment) -> str:
    """The config with the link of this code switched on; the box keeps its own interface name."""
    current = parse_config(text).model.mgmt
    return with_section(text, enrolment.section(interface=current.interface or DEFAULT_INTERFACE))


def cut_text(text: str) -> str:
    """The config with the link switched off; the hub's details stay, so the page can show what was cut.
    Metrics listeners on the link address go with it, and syslog sent through the link (siem.via: mgmt) is
    switched off: that address and way are gone, and a config naming them would be refused, so the cut would
    fail exactly where a vendor's hub watches the box (lab/fleet.py)."""
    cfg = parse_config(text).model
    section = cfg.mgmt.model_dump(mode="json")
    section["enabled"] = False
    out = with_section(text, section)
    if cfg.mgmt.address is not None:
        link = str(ipaddress.ip_address(cfg.mgmt.address))
        kept = [item for item in cfg.metrics.listen if parse_listen(item).address != link]
        if kept != cfg.metrics.listen:
            metrics = cfg.metrics.model_dump(mode="json")
            metrics["listen"] = kept
            out = with_section(out, metrics, "metrics")
    if cfg.siem.enabled and cfg.siem.via == "mgmt":
        siem = cfg.siem.model_dump(mode="json")
        siem["enabled"] = False
        out = with_section(out, siem, "siem")
    return out


def cut(ctx: Context, author: str, source: str, remote: str = "", authority: Collection[str] | None = None,
        netns: str | None = None, service: ConfigService | None = None) -> Revision | None:  # fmt: skip
    """Interface down now (audited), then the config change `mgmt.enabled: false` (audited by
    ConfigService), then a notice to the clinic's channels. None if the link was already off."""
    text = live_text(ctx)
    m = parse_config(text).model.mgmt
    iface = WgInterface(m.interface, run_dir=ctx.paths.run_dir, netns=netns)
    existed = iface.exists()
    if existed:
        iface.delete()
    audit_log(ctx).record(
        author,
        "mgmt.cut",
        {"interface": m.interface, "was_up": existed, "hub": m.hub_endpoint},
        source,
        remote,
    )
    _notify(ctx, text, author)
    if not m.enabled:
        return None
    svc = service or ConfigService(ctx)
    return svc.apply(cut_text(text), author, source, CUT_COMMENT, remote=remote, authority=authority)


def _notify(ctx: Context, text: str, author: str) -> None:
    """Tell the clinic's channels (mail, LINE, ...) through the outbox; a failure here never stops the cut."""
    try:
        from appliance.notify.channels import channels
        from appliance.notify.message import Message
        from appliance.notify.outbox import enqueue

        cfg = parse_config(text).model
        names = [c.name for c in channels(cfg, ctx.paths.keys_dir)]
        if not names:
            return
        msg = Message(subject=f"[{cfg.clinic.name}] 保守業者の管理接続を切りました",
                      body=f"{author} が保守業者の管理接続を切りました。保守業者はこの機器に接続できません。"
                           "再開するには、設定 → 保守業者の管理接続 から登録し直してください。",
                      severity=3, kind="notice")  # fmt: skip
        with ctx.db.transaction() as conn:
            enqueue(conn, msg, names, wall())
    except Exception:  # the link is already cut: a notice must not undo or hide that
        log.exception("could not queue the notice of the cut management link")
