"""What the daemon makes, as root, before each start of the web UI (appliance.webserver, the area hook
`web_start`): the web UI runs as `mamori-web` and cannot write the key directory (appliance.child_access),
so its certificate and its cookie key must exist before it starts. The first certificate carries the
default names, as when the web UI made it itself; webui.tls_renew gives it the config's names."""

from __future__ import annotations

from appliance.accounts import Account
from appliance.subsystem import Context
from webui.security import load_secret_key
from webui.tls import ensure_certificate


def before_web_start(ctx: Context, account: Account | None) -> None:
    ensure_certificate(ctx.paths.keys_dir)
    load_secret_key(ctx.paths.keys_dir)
