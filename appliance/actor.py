"""Who did it, for the audit log, when a command is run on the box's shell.

Every area's CLI wrote this line again (ten copies, two of which forgot that a subcommand may have no
--author). The web UI's answer is the signed-in account (webui.context.actor) and the fleet API's the vendor
account of the token: those live with the request, not here.
"""

from __future__ import annotations

import argparse
import os


def cli_actor(args: argparse.Namespace) -> str:
    """--author when given; else the person who ran sudo (SUDO_USER), as root's own name says nothing; else the
    shell user; else "root" (a unit with no environment)."""
    return getattr(args, "author", None) or os.environ.get("SUDO_USER") or os.environ.get("USER") or "root"
