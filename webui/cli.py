"""`mamori setup-code`: the one-time code the first-boot wizard asks for (webui/setup_code.py).

Run at the box's console by the vendor, and at boot by `mamori-setup-code.service`, which writes the
console banner (`--issue`). The banner is ASCII on purpose: the Linux text console has no Japanese font.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup-code", help="初期設定画面のセットアップコード / the setup wizard's one-time code"
    )
    p.add_argument("--issue", metavar="FILE", help="コンソールの案内文も書く / also write a console banner")
    p.set_defaults(func=cmd_setup_code)
