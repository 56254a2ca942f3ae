"""`mamori metrics`: print the same exposition text Prometheus scrapes from /metrics.

`--token` prints the bearer token instead (made if missing), for the vendor's scrape config when
`metrics.token` is on; it is audited, since the token lets its holder read the box's state.
"""

from __future__ import annotations

import argparse
import sys

from appliance.actor import cli_actor
from appliance.audit import audit_log
from appliance.subsystem import Context
from metrics.exposition import ensure_token, exposition


def cmd_metrics(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    if args.token:
        token = ensure_token(ctx.paths)
        audit_log(ctx).record(cli_actor(args), "metrics.token.shown", {}, source="cli")
        print(token)
        return 0
    sys.stdout.write(exposition(ctx).decode("utf-8"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("metrics", help="Prometheus 用の監視情報 / the Prometheus metrics text")
    p.add_argument(
        "--token", action="store_true", help="スクレイプ用のトークンを表示 / print the scrape token"
    )
    p.set_defaults(func=cmd_metrics)
