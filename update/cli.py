"""`mamori update status | check | install FILE | install --latest`.

Japanese by default (`--lang en`), `--json` for status. Every refusal (bad signature, downgrade, wrong
architecture, not an image box, no space, busy) ends with a non-zero exit and its reason (appliance.cli
prints UpdateRefused like any MamoriError). On a box that is not an image box, `install FILE` still verifies
and stages the bundle before it refuses, so a lab can prove verification and staging.
"""

from __future__ import annotations

import argparse

from appliance.actor import cli_actor
from appliance.clock import show, wall
from appliance.lang import print_status
from appliance.revisions import live_config
from appliance.subsystem import Context
from update import actions, errors
from update.model import UpdateConfig
from update.schedule import next_quiet_start, utc_iso
from update.status import ROLLED_BACK_JA, UpdateStatus, update_status

CLI_CHECK_WAIT = 600.0  # seconds: a scheduled check's download of a bundle over a clinic line

OUTCOMES = {
    "up-to-date": ("最新の版です", "up to date"),
    "held-back": ("新しい版は、この機器にはまだ配信されていません（段階的な配信）", "a newer version is held back for this box (staged rollout)"),
    "staged": ("新しい版を受け取り、署名を確認しました", "a newer version was downloaded and verified"),
    "ready": ("新しい版は受け取り済みです", "the newer version is already staged"),
}  # fmt: skip


def _lines(s: UpdateStatus, lang: str) -> list[str]:
    en = lang == "en"
    if s.running:
        age = f" ({s.age_days} days old)" if en else f"（{s.age_days} 日前の版）"
        lines = [
            ("running: " if en else "動いている版: ") + s.running + (age if s.age_days is not None else "")
        ]
    else:
        lines = [
            "running: not an image box (no IMAGE_VERSION)"
            if en
            else "動いている版: 機器用イメージではありません"
        ]
    lines.append(("fallback: " if en else "予備の版: ") + (s.fallback or "-"))
    if s.trial:
        outcome = s.trial.get("outcome")
        text = {"good": ("good", "正常に動いています"), "rolled-back": ("rolled back: the new version failed its check",
                ROLLED_BACK_JA), "on-trial": ("on trial", "確認中")}.get(str(outcome), (str(outcome), str(outcome)))  # fmt: skip
        lines.append(
            ("last update " if en else "前回の更新 ") + f"{s.trial.get('version')}: " + text[0 if en else 1]
        )
    if s.result:
        ok = s.result.get("ok")
        msg = s.result.get("message_en" if en else "message_ja") or ""
        lines.append(("last install: " if en else "前回の書き込み: ") + (("ok" if ok else "failed") if en else ("成功" if ok else "失敗"))
                     + (f" ({msg})" if msg and not ok else ""))  # fmt: skip
    if s.in_progress:
        lines.append(f"installing {s.in_progress.get('version')}: {s.percent} %" if en else
                      f"更新中 {s.in_progress.get('version')}: {s.percent} %")  # fmt: skip
    if s.staged:
        staged = ("staged: " if en else "受け取り済み: ") + s.staged["version"]
        if s.staged_rolled_back:
            staged += (
                " (failed its check here: not installed again)"
                if en
                else "（この機器で確認に失敗した版です。入れません）"
            )
        lines.append(staged)
    if s.last_check:
        when = show(s.last_check.get("at"))
        o = s.last_check.get("outcome", "")
        text = OUTCOMES.get(o, (s.last_check.get("message_ja", o), s.last_check.get("message_en", o)))
        lines.append(("last check " if en else "前回の確認 ") + f"{when}: " + text[1 if en else 0])
    lines.append(
        ("source: " if en else "確認先: ") + (s.source or "-") + f" (auto: {s.auto}, {s.quiet_hours})"
    )
    return lines


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    state = update_status(ctx, live_config(ctx.db))
    print_status(args, state.to_json(), lambda: _lines(state, args.lang))
    return 0


def _check(args: argparse.Namespace, ctx: Context) -> actions.CheckOutcome:
    cfg = live_config(ctx.db)
    # A person waits (up to CLI_CHECK_WAIT) for a check the schedule is running rather than be refused.
    outcome = actions.check(ctx, cfg, cfg.update if cfg else UpdateConfig(), cli_actor(args), "cli",
                            wait=CLI_CHECK_WAIT)  # fmt: skip
    if outcome.outcome == "refused":
        raise errors.UpdateRefused(outcome.message_ja, outcome.message_en, code=outcome.code)
    ja, en = OUTCOMES[outcome.outcome]
    print((en if args.lang == "en" else ja) + (f": {outcome.version}" if outcome.version else ""))
    return outcome


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    _check(args, ctx)
    return 0


def _reboot(args: argparse.Namespace, ctx: Context) -> str:
    if args.reboot == "now":
        return "now"
    cfg = live_config(ctx.db)
    ucfg = cfg.update if cfg else UpdateConfig()
    return "at:" + utc_iso(next_quiet_start(ucfg.quiet_hours, wall(), cfg.clinic.timezone if cfg else None))


def cmd_install(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    if args.latest:
        if _check(args, ctx).outcome not in ("staged", "ready"):
            return 0
    else:
        try:
            src = open(args.file, "rb")
        except OSError as exc:
            raise errors.UpdateRefused(f"ファイル {args.file} を読めません", f"cannot read {args.file}: {exc.strerror}",
                                       code="update.format") from None  # fmt: skip
        with src:
            staged = actions.take_file(ctx, src, cli_actor(args), "cli", origin="cli")
        print(
            f"verified and staged {staged.version}"
            if args.lang == "en"
            else f"版 {staged.version} の署名を確認し、保存しました"
        )
    req = actions.request(ctx, live_config(ctx.db), _reboot(args, ctx), cli_actor(args), "cli")
    print(f"install of {req['version']} requested (reboot: {req['reboot']})" if args.lang == "en" else
          f"版 {req['version']} の更新を依頼しました（再起動: {'すぐ' if req['reboot'] == 'now' else req['reboot'][3:]}）")  # fmt: skip
    return 0


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    ctx.db.migrate()
    req = actions.cancel(ctx, cli_actor(args), "cli")
    print(f"withdrew the install request for {req.get('version')}" if args.lang == "en"
          else f"版 {req.get('version')} の更新の依頼を取りやめました")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    upd = sub.add_parser("update", help="ソフトウェア更新 / software updates").add_subparsers(
        dest="update_cmd", required=True
    )
    p = upd.add_parser("status", help="動いている版・予備の版・前回の結果 / versions and last result")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    upd.add_parser("check", help="新しい版の確認と受け取り / check and download").set_defaults(func=cmd_check)
    p = upd.add_parser("install", help="更新を入れる / install a bundle or the latest version")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("file", nargs="?", help="更新ファイル（.tar） / bundle file")
    what.add_argument("--latest", action="store_true", help="確認先の最新版 / the newest from the source")
    p.add_argument("--reboot", choices=("now", "quiet"), default="now",
                   help="再起動: すぐ / 静かな時間帯 (now / quiet hours)")  # fmt: skip
    p.set_defaults(func=cmd_install)
    upd.add_parser(
        "cancel", help="まだ始まっていない更新の依頼を取りやめる / withdraw a waiting request"
    ).set_defaults(func=cmd_cancel)
