"""The notification test as an action (appliance.actions): send one test message on every configured channel.

Run by the daemon: the channels' secrets (SMTP password, LINE token, webhook signing key) are in the key
directory, root's. The account must hold notifications.manage (the settings page checks the same); the
page records `notifications.test` with the per-channel outcome, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.actions.registry import ActionEnv, action
from appliance.config.authority import NOTIFICATIONS_MANAGE
from appliance.errors import MamoriError
from webui.action_accounts import require

ACTION_NAMES = ("notifications.test",)
CHANNEL_LABELS = {"email": "メール", "webhook": "Webhook", "line": "LINE", "syslog": "syslog"}


@dataclass(frozen=True)
class TestArgs:
    actor: str


@action("notifications.test", TestArgs)
def send_test(env: ActionEnv, args: TestArgs) -> dict[str, Any]:
    """One test message per configured channel; [label, sent, why not] each (empty: no channel configured)."""
    from appliance.notify import Message, channels

    require(env, args.actor, NOTIFICATIONS_MANAGE)
    cfg = env.config()
    chans = channels(cfg, env.ctx.paths.keys_dir) if cfg else []
    if not chans or cfg is None:
        return {"results": []}
    msg = Message(
        f"【Mamori】テスト送信（{cfg.clinic.name}）",
        "これは Mamori の設定画面から送ったテストです。届いていれば設定は正しく動いています。",
        3,
    )
    results = []
    for ch in chans:
        label = CHANNEL_LABELS.get(ch.name, ch.name)
        try:
            ch.send(msg)
            results.append([label, True, ""])
        except (MamoriError, OSError) as exc:
            text = exc.text("ja") if isinstance(exc, MamoriError) else "送信先につながりませんでした"
            results.append([label, False, text])
    return {"results": results}
