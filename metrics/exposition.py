"""The exposition text (Prometheus text format 0.0.4, made by prometheus_client) and the scrape token.

A fresh registry per caller holds only the MamoriCollector: no process or platform collectors of the
client library (they describe the Python process, which tells a vendor nothing about the clinic).
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from appliance.config.model import MamoriConfig
from appliance.fileio import create_once
from appliance.paths import Paths
from appliance.subsystem import Context
from metrics.collect import MamoriCollector

# The classic text format: the series Mamori exposes (ASCII names) read the same in 1.0.0, and Debian 12's
# Prometheus 2.42 names its parser by this type.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN_FILE = "metrics.token"


def registry(ctx: Context, cfg: MamoriConfig | None = None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MamoriCollector(ctx, cfg))
    return reg


def exposition(ctx: Context, cfg: MamoriConfig | None = None) -> bytes:
    return generate_latest(registry(ctx, cfg))


def token_path(paths: Paths) -> Path:
    return paths.keys_dir / TOKEN_FILE


def ensure_token(paths: Paths) -> str:
    """The bearer token scrapes must present when `metrics.token` is on; made once (0600) if missing."""
    path = token_path(paths)
    if not path.exists():
        create_once(
            path, secrets.token_urlsafe(32) + "\n", mode=0o600
        )  # daemon and CLI racing: one token wins
    return path.read_text(encoding="utf-8").strip()


def token_ok(expected: str | None, header: str | None) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time; any header passes when no token is set."""
    if expected is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())
