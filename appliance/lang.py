"""Japanese or English on the CLI: one reading of --lang for every area (Japanese unless asked otherwise).

Errors carry both texts themselves (appliance.errors.Message); this is for what a command prints.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def english(args: argparse.Namespace) -> bool:
    """True when the command was asked for English (--lang en); a command without --lang speaks Japanese."""
    return getattr(args, "lang", "ja") == "en"


def pick(args: argparse.Namespace, ja: str, en: str) -> str:
    return en if english(args) else ja


def say(args: argparse.Namespace, ja: str, en: str) -> None:
    print(pick(args, ja, en))


def print_status(args: argparse.Namespace, data: dict[str, Any], lines: Callable[[], list[str]]) -> None:
    """The answer of an area's `status` command: with --json the state as one JSON object (Japanese text kept
    readable), otherwise its lines, which `lines` makes in the asked language."""
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False))
    else:
        print("\n".join(lines()))
