"""`mamori`: the command line. Errors are caught once here and printed in Japanese (or English with --lang en).

Each area adds its own sub-commands through `register(subparsers)` in `<area>/cli.py`; a handler is
`handler(args, ctx) -> int`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from appliance import __version__, clock
from appliance.actor import cli_actor
from appliance.area import load
from appliance.areas import hooks
from appliance.audit import audit_log
from appliance.clock import wall
from appliance.errors import ConfigError, MamoriError
from appliance.lang import say
from appliance.paths import DEFAULT_CONFIG, DEFAULT_STATE_DIR, Paths
from appliance.revisions import live_config
from appliance.service import ConfigService
from appliance.storage import Database
from appliance.subsystem import Context

# Every area's commands (appliance.areas), in the areas' order.
AREA_CLIS: tuple[str, ...] = tuple(hooks("cli"))


def _read_text(args: argparse.Namespace) -> str:
    path = Path(args.file) if args.file else Path(args.config)
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MamoriError(
            f"ファイル {path} がありません", f"file {path} not found", code="file.missing"
        ) from None


def cmd_validate(args: argparse.Namespace, ctx: Context) -> int:
    loaded = ConfigService(ctx, subsystems=()).validate(_read_text(args))
    for warning in loaded.warnings:
        say(args, "注意: " + warning.text("ja"), "warning: " + warning.text("en"))
    say(args, "設定は正しい形式です", "the configuration is valid")
    return 0


def cmd_diff(args: argparse.Namespace, ctx: Context) -> int:
    diff = ConfigService(ctx, subsystems=()).diff(_read_text(args))
    print(diff or ("変更はありません" if args.lang != "en" else "no changes"))
    return 0


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    service = ConfigService(ctx)
    text = _read_text(args)
    for warning in service.validate(text).warnings:
        say(args, "注意: " + warning.text("ja"), "warning: " + warning.text("en"))
    rev = service.apply(text, cli_actor(args), "cli", args.comment, confirm_seconds=args.confirm)
    say(args, f"リビジョン {rev.id} を反映しました", f"applied revision {rev.id}")
    if args.confirm:
        say(
            args,
            f"{args.confirm} 秒以内に `mamori config confirm` を実行しないと、自動で元に戻ります",
            f"run `mamori config confirm` within {args.confirm} s or it is rolled back automatically",
        )
    return 0


def cmd_history(args: argparse.Namespace, ctx: Context) -> int:
    tz = _clinic_zone(ctx)
    for rev in ConfigService(ctx, subsystems=()).history(args.limit):
        when = clock.show(rev.created_at, tz, "%Y-%m-%d %H:%M:%S")
        print(f"{rev.id:>5}  {when}  {rev.status:<10} {rev.source:<8} {rev.author:<12} {rev.comment}")
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    service = ConfigService(ctx, subsystems=())
    rev = service.revisions.get(args.revision)
    if rev is None:
        raise MamoriError(f"リビジョン {args.revision} はありません", f"no revision {args.revision}")
    print(rev.diff if args.diff else rev.config_text, end="")
    return 0


def cmd_rollback(args: argparse.Namespace, ctx: Context) -> int:
    rev = ConfigService(ctx).rollback(args.revision, cli_actor(args), "cli")
    say(args, f"リビジョン {args.revision} の内容に戻しました（新しいリビジョン {rev.id}）",
         f"rolled back to revision {args.revision} (new revision {rev.id})")  # fmt: skip
    return 0


def cmd_confirm(args: argparse.Namespace, ctx: Context) -> int:
    rev = ConfigService(ctx, subsystems=()).confirm(cli_actor(args), "cli")
    say(args, f"リビジョン {rev.id} を確定しました", f"revision {rev.id} confirmed")
    return 0


def cmd_confirm_timer(args: argparse.Namespace, ctx: Context) -> int:
    """Runs detached after `apply --confirm`: waits for the deadline (or the confirmation), then decides."""
    service = ConfigService(ctx)
    while (pending := service.pending()) is not None:
        if wall() >= pending["deadline"]:
            service.revert_if_unconfirmed()
            return 0
        time.sleep(min(1.0, max(0.05, pending["deadline"] - wall())))
    return 0


def cmd_audit_verify(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    result = audit_log(ctx).verify()
    print(result.text(args.lang))
    return 0 if result.ok else 3


def cmd_audit_list(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    tz = _clinic_zone(ctx)
    for e in audit_log(ctx).search(args.search, limit=args.limit):
        when = clock.show(e.ts, tz, "%Y-%m-%d %H:%M:%S")
        print(f"{e.id:>6}  {when}  {e.actor:<12} {e.source:<6} {e.remote:<15} {e.action}")
    return 0


def cmd_daemon(args: argparse.Namespace, ctx: Context) -> int:
    from appliance.daemon import run_daemon

    return run_daemon(ctx)


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    from appliance.status import box_status

    ctx.db.migrate()
    state = box_status(ctx)
    tz = _clinic_zone(ctx)
    print("\n".join(state.lines_en(tz) if args.lang == "en" else state.lines_ja(tz)))
    return 0 if state.ok else 1


def _clinic_zone(ctx: Context) -> str | None:
    """The clinic's zone from the live revision (None: Asia/Tokyo), for times a person reads."""
    live = live_config(ctx.db)
    return live.clinic.timezone if live is not None else None


def cmd_version(args: argparse.Namespace, ctx: Context) -> int:
    print(f"mamori {__version__}")
    return 0


def _config_commands(sub: argparse._SubParsersAction) -> None:
    cfg = sub.add_parser("config", help="設定の検証・反映・履歴 / validate, apply, history").add_subparsers(
        dest="config_cmd", required=True
    )
    for name, func, helptext in (
        ("validate", cmd_validate, "検証だけ行う / validate only"),
        ("diff", cmd_diff, "反映中の設定との差分 / diff against the live config"),
        ("apply", cmd_apply, "反映する / apply"),
    ):
        p = cfg.add_parser(name, help=helptext)
        p.add_argument("--file", "-f", help="読む設定ファイル（既定は --config） / file to read")
        p.set_defaults(func=func)
        if name == "apply":
            p.add_argument("--comment", "-m", default="")
            p.add_argument("--confirm", type=int, metavar="SECONDS", help="確定がなければ自動で戻す秒数")
    p = cfg.add_parser("history", help="リビジョン一覧 / list revisions")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_history)
    p = cfg.add_parser("show", help="リビジョンの内容 / show a revision")
    p.add_argument("revision", type=int)
    p.add_argument("--diff", action="store_true")
    p.set_defaults(func=cmd_show)
    p = cfg.add_parser("rollback", help="以前のリビジョンに戻す / roll back")
    p.add_argument("revision", type=int)
    p.set_defaults(func=cmd_rollback)
    cfg.add_parser("confirm", help="保留中の変更を確定 / confirm").set_defaults(func=cmd_confirm)
    cfg.add_parser("confirm-timer", help=argparse.SUPPRESS).set_defaults(func=cmd_confirm_timer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mamori", description="Mamori 守り — 医療機関向けセキュリティ機器")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="設定ファイル / config file")
    parser.add_argument(
        "--state-dir", default=str(DEFAULT_STATE_DIR), help="状態ディレクトリ / state directory"
    )
    parser.add_argument("--lang", choices=("ja", "en"), default=os.environ.get("MAMORI_LANG", "ja"))
    parser.add_argument("--author", help="監査ログに残す操作者名 / who, for the audit log")
    parser.add_argument("--verbose", "-v", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _config_commands(sub)
    audit = sub.add_parser("audit", help="監査ログ / audit log").add_subparsers(
        dest="audit_cmd", required=True
    )
    audit.add_parser("verify", help="改ざんの検査 / verify the chain").set_defaults(func=cmd_audit_verify)
    p = audit.add_parser("list", help="一覧 / list")
    p.add_argument("--search")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_audit_list)
    sub.add_parser("daemon", help="常駐プロセス / run the daemon").set_defaults(func=cmd_daemon)
    sub.add_parser("status", help="本機の状態 / is the box doing its job").set_defaults(func=cmd_status)
    sub.add_parser("version").set_defaults(func=cmd_version)
    for module in AREA_CLIS:
        load(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    paths = Paths(Path(args.config), Path(args.state_dir))
    ctx = Context(paths, Database(paths.db))
    try:
        return args.func(args, ctx)
    except ConfigError as exc:
        print(exc.text(args.lang), file=sys.stderr)
        return 2
    except MamoriError as exc:
        prefix = "エラー: " if args.lang != "en" else "error: "
        print(prefix + exc.text(args.lang), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
