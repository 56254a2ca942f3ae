"""`mamori fleet token create|list|revoke`: the vendor accounts' API tokens from the box's shell (root, i.e.
the clinic's administrator or whoever installs the box), audited like the web page's buttons."""

from __future__ import annotations

import argparse

from appliance import clock
from appliance.actor import cli_actor
from appliance.audit import audit_log
from appliance.subsystem import Context
from fleetapi.tokens import TokenStore


def _audit(ctx: Context, args: argparse.Namespace, action: str, detail: dict) -> None:
    audit_log(ctx).record(cli_actor(args), action, detail, "cli")


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    info, token = TokenStore(ctx.db).create(args.account, cli_actor(args), args.label)
    _audit(ctx, args, "fleet.token_created", {"account": info.account, "token": info.id, "label": info.label})
    print(token)
    return 0


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    for t in TokenStore(ctx.db).all():
        state = "revoked" if t.revoked_at else "active"
        used = clock.show(t.last_used, None, "%Y-%m-%d %H:%M")
        print(f"{t.id}  {t.account:<16} {state:<8} last used {used}  {t.label}")
    return 0


def cmd_revoke(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    info = TokenStore(ctx.db).revoke(args.token_id)
    _audit(ctx, args, "fleet.token_revoked", {"account": info.account, "token": info.id})
    print(("revoked " if args.lang == "en" else "無効にしました: ") + info.id)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fleet = sub.add_parser("fleet", help="保守業者の一括変更 API / the vendor's fleet API").add_subparsers(
        dest="fleet_cmd", required=True
    )
    tokens = fleet.add_parser("token", help="API の鍵 / API tokens").add_subparsers(
        dest="token_cmd", required=True
    )
    p = tokens.add_parser(
        "create", help="保守業者のアカウントに鍵を作る（一度だけ表示） / make a token (shown once)"
    )
    p.add_argument("account")
    p.add_argument("--label", default="")
    p.set_defaults(func=cmd_create)
    tokens.add_parser("list", help="鍵の一覧 / list tokens").set_defaults(func=cmd_list)
    p = tokens.add_parser("revoke", help="鍵を無効にする / revoke a token")
    p.add_argument("token_id")
    p.set_defaults(func=cmd_revoke)
