"""`mamori setup-code`: the one-time code the first-boot wizard asks for (webui/setup_code.py).
`mamori tls status | renew`: the web UI's certificate (webui/tls_renew.py).

setup-code runs at the box's console by the vendor, and at boot by `mamori-setup-code.service`, which writes
the console banner (`--issue`). The banner is ASCII on purpose: the Linux text console has no Japanese font.
`tls status` exits 1 when the certificate has expired or lacks a name people type, so a check can use it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from dataclasses import asdict
from pathlib import Path

from appliance.actor import cli_actor
from appliance.clock import show, wall
from appliance.errors import MamoriError
from appliance.revisions import config_in_force
from appliance.subsystem import Context
from webui.setup_code import discard_setup_code, display, ensure_setup_code

# agetty expands \4 to the box's IPv4 address when it prints the banner.
BANNER = """
  Mamori: finish the setup from a PC in the clinic network.
  Open https://\\4/ in a browser and enter this setup code:

      {code}

"""


def cmd_setup_code(args: argparse.Namespace, ctx: Context) -> int:
    from webui.accounts import AccountStore

    ctx.db.migrate()
    issue = Path(args.issue) if args.issue else None
    if AccountStore(ctx.db).admin_exists():
        discard_setup_code(ctx.paths.keys_dir)
        if issue is not None:
            issue.unlink(missing_ok=True)
        print(
            "初期設定は済んでいます（管理者がいます）。セットアップコードはもう使えません。"
            if args.lang != "en"
            else "setup is done (an administrator exists); there is no setup code any more"
        )
        return 0
    code = display(ensure_setup_code(ctx.paths.keys_dir))
    if issue is not None:
        _write_banner(issue, BANNER.format(code=code))
    print(f"セットアップコード: {code}" if args.lang != "en" else f"setup code: {code}")
    return 0


def _write_banner(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def cmd_tls_status(args: argparse.Namespace, ctx: Context) -> int:
    from webui.tls import read_certificate
    from webui.tls_renew import expiry_warning, missing_names, names_match, wanted_names

    ctx.db.migrate()
    cfg = config_in_force(ctx.db, ctx.paths.config)  # None: a new box, default names
    tz = cfg.clinic.timezone if cfg else None
    now, en = wall(), args.lang == "en"
    info = read_certificate(ctx.paths.keys_dir)
    wanted = wanted_names(cfg, socket.gethostname())
    if info is None:
        print("no web certificate yet (made when the web UI starts)" if en else
              "画面の証明書はまだありません（画面の起動時に作られます）")  # fmt: skip
        return 1
    missing = missing_names(info, wanted)
    extra = [n for n in info.names if n not in wanted.all]
    days = info.days_left(now)
    ok = days > 0 and not missing and (info.uploaded or names_match(info, wanted))
    if args.json:
        print(json.dumps({**asdict(info), "days_left": int(days), "missing": list(missing), "extra": extra, "ok": ok},
                         ensure_ascii=False))  # fmt: skip
        return 0 if ok else 1
    until = show(info.not_after, tz, "%Y/%m/%d %H:%M")
    left = (f"expired {int(-days)} day(s) ago" if en else f"{int(-days)} 日前に期限切れ") if days <= 0 else \
        (f"{int(days)} day(s) left" if en else f"あと {int(days)} 日")  # fmt: skip
    if en:
        lines = [f"web certificate: {'uploaded by the clinic' if info.uploaded else 'self-signed by Mamori'}",
                 f"names: {', '.join(info.names)}", f"SHA-256: {info.fingerprint}", f"valid until: {until} ({left})"]  # fmt: skip
        lines += [f"missing names: {', '.join(missing)}"] if missing else []
        lines += [f"names no longer used: {', '.join(extra)}"] if extra and not info.uploaded else []
    else:
        lines = [f"画面の証明書: {'医院で入れたもの' if info.uploaded else 'Mamori の自己署名'}",
                 f"名前: {', '.join(info.names)}", f"指紋（SHA-256）: {info.fingerprint}", f"有効期限: {until}（{left}）"]  # fmt: skip
        lines += [f"足りない名前: {', '.join(missing)}"] if missing else []
        lines += [f"使われなくなった名前: {', '.join(extra)}"] if extra and not info.uploaded else []
    warning = expiry_warning(info, now, tz)
    if warning is not None:
        lines.append("warning: the uploaded certificate ends soon; ask the vendor for a new one" if en else
                      "注意: " + warning.text)  # fmt: skip
    if not info.uploaded and not ok and days > 0:
        lines.append("the box renews it within the hour (or now: mamori tls renew)" if en else
                     "1 時間以内に自動で作り直します（すぐに行うには mamori tls renew）")  # fmt: skip
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_tls_renew(args: argparse.Namespace, ctx: Context) -> int:
    from webui.tls import read_certificate
    from webui.tls_renew import renew, wanted_names

    ctx.db.migrate()
    info = read_certificate(ctx.paths.keys_dir)
    if info is not None and info.uploaded and not args.force:
        raise MamoriError(
            "医院で入れた証明書を使っているため、作り直しません。Mamori の自己署名の証明書に置き換える場合は "
            "--force を付けてください。",
            "the certificate in use was uploaded by the clinic and is not replaced; add --force to replace it "
            "with a new self-signed one",
            code="tls.uploaded",
        )
    wanted = wanted_names(config_in_force(ctx.db, ctx.paths.config), socket.gethostname())
    done = renew(
        ctx, wanted, "forced" if info is not None and info.uploaded else "manual", cli_actor(args), "cli"
    )
    if args.lang == "en":
        print(f"renewed the web certificate: {', '.join(done.new.names)}\nSHA-256: {done.new.fingerprint}")
    else:
        print(
            f"画面の証明書を作り直しました: {', '.join(done.new.names)}\n指紋（SHA-256）: {done.new.fingerprint}"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    tls = sub.add_parser("tls", help="画面の証明書 / the web UI's certificate").add_subparsers(
        dest="tls_cmd", required=True
    )
    p = tls.add_parser("status", help="名前・指紋・有効期限 / names, fingerprint, expiry")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tls_status)
    p = tls.add_parser(
        "renew", help="自己署名の証明書を今すぐ作り直す / renew the self-signed certificate now"
    )
    p.add_argument(
        "--force", action="store_true", help="医院で入れた証明書も置き換える / also replace an uploaded one"
    )
    p.set_defaults(func=cmd_tls_renew)
    p = sub.add_parser(
        "setup-code", help="初期設定画面のセットアップコード / the setup wizard's one-time code"
    )
    p.add_argument("--issue", metavar="FILE", help="コンソールの案内文も書く / also write a console banner")
    p.set_defaults(func=cmd_setup_code)
