"""設定 → 保守用の遠隔ログイン（SSH）: whether maintenance SSH is on, where it listens, the fingerprints of
the keys that may log in, and a form to switch it and to paste keys (管理者 only, `ssh.manage`).

A change builds a new config text (only the `ssh:` section is replaced, every other line untouched) and goes
through the one review / diff / apply-with-confirm page like every other change, so ConfigService validates
it (keys are checked there, with the message shown on the review page's refusal) and the audit log records
it. Non-goal: choosing zones or a port (fixed: lan and mgmt, tcp/22; see sshsvc).
"""

from __future__ import annotations

from typing import Any

import yaml
from flask import abort, flash, redirect, render_template, request, url_for

from appliance.errors import ConfigError
from sshsvc.status import fingerprint
from webui import changes, core
from webui.context import requires
from webui.views.settings_bp import bp
from webui.yamlpath import replace_section

MAX_PASTE = 64 * 1024


def _keys_from_form(text: str) -> list[str]:
    """One key per non-empty line; lines starting with # are notes for the pasting person, not keys."""
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip() and not
            line.strip().startswith("#")]  # fmt: skip


def new_config_text(text: str, enabled: bool, keys: list[str]) -> str:
    block = yaml.safe_dump({"ssh": {"enabled": enabled, "authorized_keys": keys}}, allow_unicode=True,
                           sort_keys=False, width=100000)  # fmt: skip
    replaced = replace_section(text, "ssh", block)
    if replaced is not None:
        return replaced
    data = yaml.safe_load(text) or {}
    data["ssh"] = {"enabled": enabled, "authorized_keys": keys}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _page(error: str = "", pasted: str | None = None, status: int = 200) -> Any:
    cfg = core.live_config()
    if cfg is None:
        return render_template("settings/ssh.html", cfg=None, error=error), status
    from sshsvc.render import listen_addresses

    keys = [fingerprint(k) for k in cfg.ssh.authorized_keys]
    shown = pasted if pasted is not None else "\n".join(cfg.ssh.authorized_keys)
    return render_template("settings/ssh.html", cfg=cfg, keys=keys, addresses=listen_addresses(cfg),
                           pasted=shown, error=error), status  # fmt: skip


@bp.route("/ssh")
@requires("ssh.manage")
def ssh_page() -> Any:
    return _page()


@bp.route("/ssh", methods=["POST"])
@requires("ssh.manage")
def ssh_change() -> Any:
    text = core.live_text()
    cfg = core.live_config()
    if text is None or cfg is None:
        abort(409)
    enabled = request.form.get("enabled") == "on"
    pasted = request.form.get("keys", "")[:MAX_PASTE]
    keys = _keys_from_form(pasted)
    new_text = new_config_text(text, enabled, keys)
    try:
        core.service().validate(new_text)
    except ConfigError as exc:
        problems = [i.message.ja for i in exc.issues if i.path.startswith("ssh")] or [exc.text("ja")]
        return _page("。".join(p.rstrip("。") for p in problems) + "。", pasted, 400)
    if cfg.ssh.enabled == enabled and cfg.ssh.authorized_keys == keys:
        flash("変更はありません。", "info")
        return redirect(url_for("settings.ssh_page"))
    what = "有効に" if enabled else "無効に"
    comment = f"保守用の遠隔ログイン（SSH）を{what}する（公開鍵 {len(keys)} 個）"
    token = changes.propose(new_text, comment, "ssh.manage")
    return redirect(url_for("settings.review", token=token))
