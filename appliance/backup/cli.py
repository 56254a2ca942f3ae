"""`mamori backup ...`: create, list, status, export, test, restore, set-passphrase.

Every action is recorded in the audit log (by the API it calls, or here for refusals). Passphrases are
read from the terminal without echo, or as one line from stdin when piped (scripts, the lab); they are
never accepted as a command-line argument, where `ps` and shell history would show them.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import datetime
from pathlib import Path

from appliance.actor import cli_actor
from appliance.audit import audit_log
from appliance.backup import api, ports, records, store
from appliance.backup.errors import BackupError, NoPassphraseError
from appliance.backup.model import BackupConfig
from appliance.backup.passphrase import load_passphrase, set_passphrase
from appliance.clock import show
from appliance.errors import ConfigError, MamoriError
from appliance.lang import say
from appliance.paths import Paths
from appliance.subsystem import Context

log = logging.getLogger(__name__)


def _config(args: argparse.Namespace, ctx: Context) -> BackupConfig:
    """The backup section; with a broken config, backups still work with the defaults (and say so)."""
    from appliance.config import load_config

    try:
        return getattr(load_config(ctx.paths.config).model, "backup", None) or BackupConfig()
    except (ConfigError, MamoriError, OSError) as exc:
        log.warning("backup: config not loadable, using default backup settings: %s", exc)
        say(args, "注意: 設定を読めないため、バックアップは既定の設定で行います",
             "note: the config does not load; using the default backup settings")  # fmt: skip
        return BackupConfig()


def _directory(args: argparse.Namespace, ctx: Context) -> Path:
    return (
        Path(args.dir) if getattr(args, "dir", None) else store.resolve_dir(ctx.paths, _config(args, ctx).dir)
    )


def _read_passphrase(args: argparse.Namespace, paths: Paths, confirm: bool = False) -> str:
    if getattr(args, "stored", False):
        stored = load_passphrase(paths)
        if stored is None:
            raise NoPassphraseError()
        return stored
    if sys.stdin.isatty():
        prompt = "Backup passphrase: " if args.lang == "en" else "バックアップのパスフレーズ: "
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: " if args.lang == "en" else "もう一度: ") != first:
            raise BackupError("2回の入力が一致しません", "the two entries differ", code="backup.mismatch")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise BackupError("パスフレーズが入力されていません", "no passphrase given", code="backup.no_input")
    return line


def cmd_set_passphrase(args: argparse.Namespace, ctx: Context) -> int:
    path = set_passphrase(ctx.paths, _read_passphrase(args, ctx.paths, confirm=True))
    ctx.db.migrate()
    audit_log(ctx).record(cli_actor(args), "backup.set_passphrase", {}, "cli")
    say(args, f"パスフレーズを保存しました（{path}）。紙に書いて金庫など機器の外にも保管してください",
         f"passphrase saved ({path}); keep a copy off the box (on paper, in a safe)")  # fmt: skip
    return 0


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    passphrase = load_passphrase(ctx.paths)
    if passphrase is None:
        raise NoPassphraseError()
    if args.out:
        path = api.create_backup(ctx, passphrase, out_file=Path(args.out), actor=cli_actor(args))
    else:
        path = api.create_backup(ctx, passphrase, _directory(args, ctx), keep=_config(args, ctx).keep,
                                 actor=cli_actor(args))  # fmt: skip
    say(args, f"バックアップを作成しました: {path}", f"backup written: {path}")
    return 0


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    directory = _directory(args, ctx)
    infos = store.list_archives(directory)
    if not infos:
        say(args, f"{directory} にバックアップはありません", f"no backups in {directory}")
        return 0
    tz = api.clinic_zone(ctx.paths)
    for info in infos:
        when = (
            _made(info.header.created, tz)
            if info.header
            else ("読めません" if args.lang != "en" else "unreadable")
        )
        version = info.header.software_version if info.header else info.problem
        print(f"{info.path.name}  {info.size / 1e6:8.2f} MB  {when}  {version}")
    return 0


def _made(created: str, tz: str | None) -> str:
    """An archive header's ISO 8601 time of creation, in the clinic's zone (as written if it does not parse)."""
    try:
        return show(datetime.fromisoformat(created).timestamp(), tz, "%Y-%m-%d %H:%M")
    except ValueError:
        return created


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    status = records.backup_status(ctx.db)
    tz = api.clinic_zone(ctx.paths)

    def when(ts: float | None) -> str:
        return show(ts, tz, "%Y-%m-%d %H:%M")

    ok_b, ok_t = status.last_ok_backup, status.last_ok_test
    say(args, f"最後に成功したバックアップ: {when(ok_b.ts if ok_b else None)}",
         f"last successful backup: {when(ok_b.ts if ok_b else None)}")  # fmt: skip
    say(args, f"最後に成功した復元テスト: {when(ok_t.ts if ok_t else None)}",
         f"last successful restore test: {when(ok_t.ts if ok_t else None)}")  # fmt: skip
    if status.last_backup and not status.last_backup.ok:
        say(args, f"注意: 直近のバックアップは失敗しました（{status.last_backup.error}）",
             f"warning: the latest backup failed ({status.last_backup.error})")  # fmt: skip
    if load_passphrase(ctx.paths) is None:
        say(args, "注意: パスフレーズ未設定のため、自動バックアップは行われません",
             "warning: no passphrase set, so scheduled backups do not run")  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    source = Path(args.archive) if args.archive else _latest(args, ctx)
    target = store.export(source, Path(args.dest))
    ctx.db.migrate()
    audit_log(ctx).record(
        cli_actor(args), "backup.export", {"archive": str(source), "to": str(target)}, "cli"
    )
    say(args, f"{target} に書き出しました", f"exported to {target}")
    return 0


def _latest(args: argparse.Namespace, ctx: Context) -> Path:
    found = store.generations(_directory(args, ctx))
    if not found:
        raise BackupError(
            "書き出すバックアップがありません", "there is no backup to export", code="backup.missing"
        )
    return found[-1]


def cmd_test(args: argparse.Namespace, ctx: Context) -> int:
    result = api.test_backup(ctx, Path(args.file), _read_passphrase(args, ctx.paths), actor=cli_actor(args))
    print(result.text(args.lang, api.clinic_zone(ctx.paths)))
    return 0 if result.ok else 3


def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    mapping = ports.parse_mapping(args.ports) if args.ports else None  # a typo is refused before anything
    passphrase = _read_passphrase(args, ctx.paths)
    if not args.yes:
        result = api.test_backup(ctx, Path(args.file), passphrase, actor=cli_actor(args))
        print(result.text(args.lang, api.clinic_zone(ctx.paths)))
        if not result.ok:
            return 3
        _show_plan(args, api.inspect_restore(ctx, Path(args.file), passphrase, ports=mapping))
        again = f" --ports {args.ports}" if args.ports else ""
        say(args, f"この内容で機器を置き換えるには --yes{again} を付けて実行してください",
             f"run again with --yes{again} to replace the box's state with this backup")  # fmt: skip
        return 0
    try:
        manifest = api.restore_backup(ctx, Path(args.file), passphrase, actor=cli_actor(args), ports=mapping,
                                      on_plan=lambda plan: _show_plan(args, plan))  # fmt: skip
    except (ports.PortMismatchError, ports.PortMapError):
        raise  # a question back to the person (who holds the passphrase): nothing written, not even the log
    except BackupError as exc:
        _record_refusal(ctx, args, exc)
        raise
    # The kernel (network, firewall, VPN peers, DHCP) follows the restored config now, by the normal path.
    api.reconcile_after_restore(ctx)
    made = show(manifest.created_ts, api.clinic_zone(ctx.paths))
    if api.reload_running_daemon(ctx.paths):
        say(args, f"{made} のバックアップを復元し、設定を反映しました。動いている常駐プロセス（mamori daemon）も"
                   "復元した設定と鍵で動き直しています。ほかに実行するコマンドはありません",
             f"restored the backup of {made} and applied it; the running daemon was told to reload "
             "and now runs on the restored config and keys. Nothing else to run")  # fmt: skip
    else:
        say(args, f"{made} のバックアップを復元し、設定を反映しました。常駐プロセス（mamori daemon）は"
                   "動いていません。`systemctl start mamori` で起動してください",
             f"restored the backup of {made} and applied it; the daemon is not running: start it "
             "with `systemctl start mamori`")  # fmt: skip
    return 0


def _show_plan(args: argparse.Namespace, plan: ports.PortPlan) -> None:
    if not plan.changed:
        say(args, f"ポート: バックアップと同じ名前のポートがこの機械にあります（{', '.join(plan.wanted)}）",
             f"ports: this box has the ports the backup uses ({', '.join(plan.wanted)})")  # fmt: skip
        return
    say(args, f"ポートの対応: {plan.summary()}。復元する設定はこう変わります:",
         f"port mapping: {plan.summary()}; the restored config changes like this:")  # fmt: skip
    print(plan.diff(), end="")


def _record_refusal(ctx: Context, args: argparse.Namespace, exc: BackupError) -> None:
    """A refused restore is worth an audit entry (someone tried); on a fresh box there is no log yet."""
    if not ctx.paths.db.exists():
        return
    audit_log(ctx).record(
        cli_actor(args), "backup.restore_refused", {"archive": args.file, "error": exc.code}, "cli"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = subparsers.add_parser("backup", help="バックアップと復元 / backup and restore").add_subparsers(
        dest="backup_cmd", required=True
    )
    p = sub.add_parser("create", help="今すぐバックアップ / back up now")
    p.add_argument("--out", metavar="FILE", help="書き出すファイル（既定は保存先に世代管理） / output file")
    p.add_argument("--dir", help="保存先ディレクトリ / backup directory")
    p.set_defaults(func=cmd_create)
    p = sub.add_parser("list", help="保存されているバックアップ / list backups")
    p.add_argument("--dir", help="保存先ディレクトリ / backup directory")
    p.set_defaults(func=cmd_list)
    sub.add_parser("status", help="最終バックアップと復元テスト / last backup and test").set_defaults(
        func=cmd_status
    )
    p = sub.add_parser("export", help="USBメモリなどへ書き出す / copy to a USB stick")
    p.add_argument("dest", metavar="DIR")
    p.add_argument("--archive", metavar="FILE", help="書き出すバックアップ（既定は最新） / default: newest")
    p.add_argument("--dir", help="保存先ディレクトリ / backup directory")
    p.set_defaults(func=cmd_export)
    for name, func, helptext in (
        ("test", cmd_test, "復元テスト（機器は変更しない） / verify without restoring"),
        ("restore", cmd_restore, "復元する / restore"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", metavar="FILE")
        p.add_argument(
            "--stored", action="store_true", help="保存済みのパスフレーズを使う / use the stored one"
        )
        if name == "restore":
            p.add_argument("--yes", action="store_true", help="確認なしで置き換える / replace without asking")
            p.add_argument("--ports", metavar="OLD=NEW,...",
                           help="ポート名が違う機械へ: wan0=enp1s0,lan0=enp2s0 / map the backup's ports to this box's")  # fmt: skip
        p.set_defaults(func=func)
    sub.add_parser("set-passphrase", help="自動バックアップ用パスフレーズ / set the passphrase").set_defaults(
        func=cmd_set_passphrase
    )
