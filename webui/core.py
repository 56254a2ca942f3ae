"""The web UI's door to the core: the live config and the ConfigService (the one path for changes).

The web UI never writes the config file or talks to an engine itself: every change goes through
`appliance.service.ConfigService`, exactly as the CLI does, so it is validated, applied all-or-nothing,
recorded as a revision and audited the same way.
"""

from __future__ import annotations

import logging

from flask import current_app, g

from appliance.clock import DEFAULT_ZONE
from appliance.config.load import parse_config
from appliance.config.model import MamoriConfig
from appliance.errors import ConfigError
from appliance.service import ConfigService
from webui.context import ctx

log = logging.getLogger(__name__)


def service() -> ConfigService:
    """`MAMORI_SUBSYSTEMS` is None in production (every engine); a list only where a test says which.
    One per request: making one runs the schema check of every area, and a page asks up to six times."""
    if "config_service" not in g:
        g.config_service = ConfigService(ctx(), subsystems=current_app.config.get("MAMORI_SUBSYSTEMS"))
    return g.config_service


def live_text() -> str | None:
    """The text of the live revision, or of the config file if nothing was applied through Mamori yet."""
    rev = service().current()
    if rev is not None:
        return rev.config_text
    path = ctx().paths.config
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


# The model of the last live text parsed. Parsing is ~18 ms of YAML and validation, and a page asks for the
# config up to four times (idle timeout, clinic zone, certificate, rules age); the text is read afresh each
# time, so a change is seen at once. The model is frozen (appliance.config.model), safe to share.
_PARSED: dict[str, MamoriConfig] = {}


def live_config() -> MamoriConfig | None:
    text = live_text()
    if text is None:
        return None
    cached = _PARSED.get(text)
    if cached is not None:
        return cached
    try:
        model = parse_config(text).model
    except ConfigError as exc:
        log.warning("the live config does not parse: %s", exc.text("en"))
        return None
    _PARSED.clear()
    _PARSED[text] = model
    return model


def clinic_zone() -> str:
    """The zone times are shown in (clinic.timezone; Asia/Tokyo before the first config), read once per request."""
    if "clinic_zone" not in g:
        cfg = live_config()
        g.clinic_zone = cfg.clinic.timezone if cfg else DEFAULT_ZONE
    return g.clinic_zone


def idle_timeout_seconds() -> int:
    cached = current_app.config.get("MAMORI_IDLE_SECONDS")
    if cached:
        return int(cached)
    cfg = live_config()
    return (cfg.web.idle_timeout_minutes if cfg else 15) * 60
